"""The built-in apps of the emulated Prime, one module per app; ``screen_for`` picks an app's screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.emulator.apps import bitcoin
from hil.emulator.apps.generic import AppScreen
from hil.emulator.apps.settings import SettingsScreen
from hil.emulator.keyos import SETTINGS, App

if TYPE_CHECKING:
    from hil.emulator.prime import Prime
    from hil.emulator.ui import Screen

SCREENS = {SETTINGS.app_id: SettingsScreen, bitcoin.APP_ID: bitcoin.BitcoinScreen}


def screen_for(prime: Prime, app: App) -> Screen:
    return SCREENS.get(app.app_id, AppScreen)(prime, app)
