"""gui-server's permission broker (``os/gui-server/src/permissions.rs``, keyos.md §1.4).

The kernel hands it the id of each parked send. It asks app-manager what the request is: already
approved => allow; denied, not grantable, unknown app or unauthorized => deny; otherwise it asks the
user with an Alerts-role modal: "Allow Access?", "{app} wants to access {subgroup label}" (app name
capped at 24 characters + "…"), buttons "Always Allow" (persist allow), "Not Now" (deny for this
run), "Never Allow" (persist deny). A prompt dropped unanswered denies. Prompts never show over the
lock screen: the modal API queues them until unlock.
"""

from __future__ import annotations

from typing import Callable, Protocol

from hil.emulator.app_manager import AppManager, PromptInfo
from hil.emulator.kernel import Kernel

TITLE = "Allow Access?"
BODY = "{0} wants to access {1}"
ALWAYS, NOT_NOW, NEVER = "Always Allow", "Not Now", "Never Allow"
MAX_APP_NAME = 24
DECISIONS = {ALWAYS: "Allow", NOT_NOW: "DenyForRun", NEVER: "Deny"}


class ModalHost(Protocol):
    """The emulator core's modal API (``ui.UI.show_modal``), called with the device lock held."""

    def show_modal(self, title: str, body: str, buttons: list[str], on_answer: Callable[[str | None], None]): ...

    def dismiss(self, modal) -> None: ...


def cap_app_name(name: str, cap: int = MAX_APP_NAME) -> str:
    """The app name is the app's own text: cap it so it cannot crowd the OS's words off the prompt."""
    return name if len(name) <= cap else name[:cap] + "…"


class PermissionBroker:
    def __init__(self, kernel: Kernel, app_manager: AppManager, modals: ModalHost,
                 device_lock: Callable[[], object], log: Callable[[str], None]):
        self.kernel = kernel
        self.app_manager = app_manager
        self.modals = modals
        self._device_lock = device_lock
        self.log = log
        self._prompts: dict[int, tuple[int, object]] = {}  # request id -> (sender pid, modal)

    def subscribe(self) -> None:
        self.kernel.set_broker(self.on_request, self.withdraw)

    def on_request(self, rid: int) -> None:
        req = self.kernel.request(rid)
        if req is None or not req.valid:
            if req is not None:
                self.kernel.resolve(rid, False)
            return
        info = self.app_manager.request_info(req.sender_app_id, req.sender_pid, req.server.name, req.message_id)
        if info == "AlreadyApproved":
            self.kernel.resolve(rid, True, req)
            return
        if not isinstance(info, PromptInfo):
            self.log(f"INFO:gui_server::permissions: request {rid} from PID {req.sender_pid} "
                     f"msgid={req.message_id}: {info}, denied")
            self.kernel.resolve(rid, False, req)
            return
        msg = self.app_manager.matrix.by_id(req.server.name, req.message_id)
        cap = MAX_APP_NAME
        if self.app_manager.defects.has("prompt-name-cap-off-by-one"):
            cap += 1
        name = cap_app_name(info.app_name, cap)
        if self.app_manager.defects.has("prompt-ellipsis-on-a-full-length-name") and len(name) == cap:
            name += "…"
        body = BODY.format(name, info.label)

        def answered(button: str | None) -> None:
            self._prompts.pop(rid, None)
            decision = DECISIONS.get(button) if button else None
            if decision is None:
                allow = self.app_manager.defects.has("broker-allows-on-timeout")
                self.log(f"WARN:gui_server::permissions: permission prompt for request {rid} dropped unanswered; "
                         f"{'allowing' if allow else 'denying'}")
                self.kernel.resolve(rid, allow, req)
                return
            if self.kernel.request(rid) is not req:  # withdrawn meanwhile: nothing to grant
                return
            self.app_manager.set_grant(info.app_id, req.sender_pid, msg, decision)
            self.kernel.resolve(rid, decision == "Allow", req)

        with self._device_lock():
            modal = self.modals.show_modal(TITLE, body, [ALWAYS, NOT_NOW, NEVER], answered)
            self._prompts[rid] = (req.sender_pid, modal)
            if self.kernel.request(rid) is not req:  # withdrawn while it was being put up
                self.modals.dismiss(modal)

    def withdraw(self, rid: int) -> None:
        """The kernel took the request back (sender or server gone, sender timed out): its prompt leaves."""
        with self._device_lock():
            prompt = self._prompts.get(rid)
            if prompt is not None:
                if self.app_manager.defects.has("broker-keeps-withdrawn-prompt"):
                    return
                self.modals.dismiss(prompt[1])
