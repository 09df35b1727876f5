"""The claims catalogue (``suites/claims.yaml``): every KeyOS security claim, cell by cell, with the checks
that cover it or the reason none can; rendered into ``docs/claims.md`` (``python -m hil.report.claims``)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "suites" / "claims.yaml"
RENDERED = ROOT / "docs" / "claims.md"
DIMENSIONS = ("binding", "scope", "lifetime", "state", "boundary", "identity")


class CatalogueError(ValueError):
    """The catalogue cannot be used as it is; the message names the file, the cell and the fix."""


class Cell(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checks: list[str] = []
    reason: str = ""

    @model_validator(mode="after")
    def _covered(self) -> Cell:
        if not self.checks and not self.reason.strip():
            raise ValueError("names no check and gives no reason: add the test node ids that cover it, or say "
                             "why no check on a device can")
        return self


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    claim: str
    source: str
    cells: dict[str, Cell]

    @field_validator("cells")
    @classmethod
    def _every_dimension(cls, cells: dict[str, Cell]) -> dict[str, Cell]:
        missing = [d for d in DIMENSIONS if d not in cells]
        unknown = [d for d in cells if d not in DIMENSIONS]
        if missing or unknown:
            raise ValueError(f"needs exactly the cells {', '.join(DIMENSIONS)} (missing: {missing or 'none'}, "
                             f"unknown: {unknown or 'none'})")
        return cells


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claims: list[Claim]

    def checks(self) -> set[str]:
        return {c for claim in self.claims for cell in claim.cells.values() for c in cell.checks}


def load(path: Path = CATALOGUE) -> Catalogue:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Catalogue.model_validate(doc)
    except (OSError, yaml.YAMLError) as e:
        raise CatalogueError(f"{path}: cannot read the claims catalogue ({' '.join(str(e).split())})") from None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise CatalogueError(f"{path}: {where}: {err['msg']}") from None


def missing_checks(catalogue: Catalogue, collected: set[str]) -> list[str]:
    """Checks the catalogue names that pytest did not collect: a node id, or a parametrised test's function."""
    return sorted(c for c in catalogue.checks()
                  if c not in collected and not any(node.startswith(c + "[") for node in collected))


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(catalogue: Catalogue) -> str:
    out = ["# KeyOS security claims and the checks that cover them", "",
           "Rendered from `suites/claims.yaml` by `python -m hil.report.claims`; do not edit by hand. Each claim is",
           "broken down by " + ", ".join(f"**{d}**" for d in DIMENSIONS) + "; a cell lists the checks that turn red",
           "when the claim breaks there, or why no check on a device can.", ""]
    covered = sum(1 for c in catalogue.claims for cell in c.cells.values() if cell.checks)
    total = len(catalogue.claims) * len(DIMENSIONS)
    out += [f"{covered} of {total} cells are checked; the other {total - covered} say why they cannot be.", ""]
    for claim in catalogue.claims:
        out += [f"## {claim.id}", "", _md(claim.claim), "", f"Source: {_md(claim.source)}", "",
                "| dimension | checks, or why none |", "|---|---|"]
        for dim in DIMENSIONS:
            cell = claim.cells[dim]
            text = "<br>".join(f"`{c}`" for c in cell.checks) if cell.checks else f"*not checked:* {_md(cell.reason)}"
            out.append(f"| {dim} | {text} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    try:
        text = render(load())
    except CatalogueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    RENDERED.write_text(text, encoding="utf-8")
    print(f"wrote {RENDERED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
