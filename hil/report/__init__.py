"""Allure evidence, nightly history and diff, signed release sign-off."""
