"""Seeded defects: named, realistic regressions of one security check each.

An emulated build lists the defects it carries (``build.py``: ``"defects": [...]``). Each module
asks ``defects.has(NAME)`` at the one place its check lives, so a defect removes exactly that
check and nothing else. The harness's own tests prove that every defect turns at least one
suite red and that the good build (no defects) stays green.
"""

from __future__ import annotations

from dataclasses import dataclass

# name -> (the check it breaks, the suite (file, or the node id of the one test) expected to catch it, the build
# flavour it shows on); a node id keeps the seeded-defect run to the test that lane needs
CATALOG: dict[str, tuple[str, str, str]] = {
    "kernel-ignores-range-list": (
        "the kernel treats every id >= 64 as permitted on any connection that has a range at all",
        "suites/security/test_permissions.py::"
        "test_declared_messages_delivered_undeclared_denied_with_log_line[wallet-sync-demo]",
        "development"),
    "mask-off-by-one": (
        "MessagePermissions.add sets bit id+1 instead of id for ids below 64",
        "suites/security/test_permissions.py::"
        "test_declared_messages_delivered_undeclared_denied_with_log_line[file-vault-demo]",
        "development"),
    "run-ending-at-64-takes-a-range-slot": (
        "MessagePermissions.add files a run ending exactly at id 63 in one of the four range slots as well as the "
        "mask, so a connection that also declares four separate runs of ids >= 64 is refused its last one",
        "suites/security/test_permissions.py::test_a_run_ending_at_64_takes_no_range_slot", "development"),
    "kernel-skips-server-pid-check": (
        "a connection with an empty mask is treated as the server's own process",
        "suites/security/test_permissions.py::"
        "test_declared_messages_delivered_undeclared_denied_with_log_line[file-vault-demo]",
        "development"),
    "kernel-allow-adds-the-next-id": (
        "the broker's Allow adds message_id..message_id+2 to the waiting connection, so the undeclared id after the "
        "allowed one is delivered unasked",
        "suites/security/test_permissions.py::test_an_allow_opens_the_asked_message_and_not_its_neighbours",
        "development"),
    "kernel-allow-opens-the-id-on-every-connection": (
        "the broker's Allow adds the asked id to every connection of the sender, so the same id on another server "
        "the app never declared is delivered",
        "suites/security/test_permissions.py::test_an_allow_opens_the_asked_message_and_not_its_neighbours",
        "development"),
    "ranged-permissions-apply-to-every-server": (
        "app-manager applies a manifest's id ranges to the app's connection to every server, not only to the server "
        "they were declared for",
        "suites/security/test_permissions.py::test_a_ranged_declaration_keeps_each_messages_tier_and_grant",
        "development"),
    "no-deny-log-line": (
        "the kernel denies an undeclared send silently, without its log line",
        "suites/security/test_permissions.py::"
        "test_declared_messages_delivered_undeclared_denied_with_log_line[file-vault-demo]",
        "development"),
    "ranged-permissions-skip-the-signature-tier": (
        "app-manager hands the kernel a 1.0.0 manifest's id ranges whole, so a third-party app declaring os/security "
        "0..64 is delivered GetSeed (Foundation only) and GetAppSeed (grant on first use) unasked",
        "suites/security/test_permissions.py::test_a_ranged_declaration_keeps_each_messages_tier_and_grant",
        "development"),
    "app-server-declarations-ignored": (
        "app-manager resolves declared messages against the OS's servers only, so a declared message of a server "
        "another app exposes is never delivered",
        "suites/security/test_permissions.py::test_declared_message_of_another_apps_server_is_delivered",
        "development"),
    "foundation-tier-not-enforced": (
        "foundation-only messages are granted to third-party apps that declare them",
        "suites/security/test_permissions.py::"
        "test_declared_messages_delivered_undeclared_denied_with_log_line[file-vault-demo]",
        "development"),
    "approved-subgroup-answers-undeclared": (
        "GetPermissionRequestInfo answers AlreadyApproved for any message of an allowed subgroup before checking the "
        "app declared it, so an app declaring Airlock read is given Airlock write unasked",
        "suites/security/test_permissions.py::test_a_subgroups_grant_covers_only_the_messages_declared", "development"),
    "broker-persists-not-now": (
        "'Not Now' is stored like 'Never Allow' instead of denying for this run only",
        "suites/security/test_permissions.py::test_not_now_denies_for_this_run_only", "development"),
    "broker-allows-on-timeout": (
        "a prompt dropped unanswered resolves as allowed",
        "suites/security/test_permissions.py::test_unanswered_prompt_denies_and_stores_nothing", "development"),
    "modal-ignores-drags": (
        "a drag on the screen while a prompt is up goes to the app beneath it, so it neither cancels nor answers it",
        "suites/security/test_permissions.py::test_a_touch_outside_the_prompt_denies_and_stores_nothing[drag]",
        "development"),
    "modal-top-row-cancels": (
        "gui-server takes a press on the permission popup's first row as one outside it, so it cancels the prompt",
        "suites/security/test_permissions.py::test_the_prompts_top_edge_is_exact[first-row-of-the-prompt]",
        "development"),
    "not-now-denies-every-app": (
        "a 'Not Now' is looked up by subgroup alone, so while the app that was told it runs, every other app asking "
        "for that subgroup is denied without being asked",
        "suites/security/test_permissions.py::test_not_now_binds_only_the_app_that_said_it", "development"),
    "ctap-prompt-names-the-rp-by-its-own-name": (
        "the registration prompt shows the RP's self-chosen name (rp.name) where the RP id belongs, so a site can "
        "present itself as any other",
        "suites/security/test_fido.py::test_the_registration_prompt_names_the_rp_id", "development"),
    "broker-ignores-persisted-deny": (
        "a stored 'Never Allow' is ignored and the user is asked again",
        "suites/security/test_permissions.py::test_never_allow_persists", "development"),
    "grant-per-message-not-subgroup": (
        "grants are stored per message, so approving one message does not cover its subgroup",
        "suites/security/test_permissions.py::"
        "test_first_use_prompts_then_always_allow_persists_for_the_subgroup[GetAirlockReadAccess]",
        "development"),
    "prompt-name-cap-off-by-one": (
        "the permission prompt shows 25 characters of the app's own name before its ellipsis, not 24",
        "suites/security/test_permissions.py::test_prompt_caps_the_apps_name[long]", "development"),
    "prompt-ellipsis-on-a-full-length-name": (
        "an app name of exactly 24 characters is shown whole but followed by an ellipsis, as if it had been cut",
        "suites/security/test_permissions.py::test_prompt_caps_the_apps_name[exactly-24]", "development"),
    "broker-keeps-withdrawn-prompt": (
        "a prompt whose request was withdrawn (its app closed, its send gave up) stays on the screen",
        "suites/security/test_trusted_display.py::test_prompt_leaves_with_its_request", "development"),
    "timed-out-send-keeps-its-prompt": (
        "a send that gave up waiting frees its request slot but the broker is never told, so its prompt stays up and "
        "answers nothing",
        "suites/security/test_trusted_display.py::test_prompt_leaves_when_its_send_gives_up", "development"),
    "modal-over-lockscreen": (
        "the permission prompt is drawn over the lock screen instead of queued until unlock",
        "suites/security/test_trusted_display.py::test_no_prompt_over_the_lock_screen", "development"),
    "app-surface-over-modal": (
        "the compositor stacks the background app's surface over a modal, which still takes the touches",
        "suites/security/test_trusted_display.py::test_app_look_alike_is_told_apart", "development"),
    "fs-skips-airlock-grant": (
        "the fs server opens Airlock files without a recorded GetAirlock…Access grant",
        "suites/security/test_isolation.py::test_location_needs_its_grant[Airlock]", "development"),
    "fs-gates-only-the-user-locations": (
        "the fs server checks access records only for User, Airlock and Usb, so an app opens Boot, System, "
        "EncryptedRoot and SystemAppData without the Foundation-only access message",
        "suites/security/test_isolation.py::test_location_needs_its_grant[Boot]", "development"),
    "close-app-ignores-developer-mode": (
        "CLOSE_APP closes an app with Developer Mode off",
        "suites/security/test_lockdown.py::test_developer_mode_off_refuses_sideload_and_certificates", "development"),
    "fs-write-with-read-grant": (
        "a read grant is accepted for writes",
        "suites/security/test_isolation.py::test_airlock_with_its_grant_and_read_grant_is_not_write", "development"),
    "fs-write-grant-reads": (
        "a write grant is accepted for reads",
        "suites/security/test_isolation.py::test_a_write_grant_is_not_a_read_grant", "development"),
    "fs-appdata-not-scoped": (
        "AppData paths resolve to one shared directory instead of one per app",
        "suites/security/test_isolation.py::test_appdata_is_per_app", "development"),
    "kernel-reads-an-empty-range": (
        "a read of 0 bytes of a mapped page answers Ok (empty), where no memory route of Xous takes a zero size",
        "suites/security/test_isolation.py::test_a_read_stays_inside_its_page", "development"),
    "kernel-shares-process-memory": (
        "a process can map another process's pages",
        "suites/security/test_isolation.py::test_another_apps_memory_cannot_be_read", "development"),
    "crash-takes-down-system": (
        "a panicking app takes its server connections' peers down with it",
        "suites/security/test_isolation.py::test_crash_is_contained", "development"),
    "app-seed-without-prompt": (
        "GetAppSeed is answered without the grant-on-first-use prompt",
        "suites/security/test_secure_element.py::test_app_seed_needs_the_users_grant_and_is_per_app", "development"),
    "app-seed-not-scoped": (
        "every app receives the same app seed",
        "suites/security/test_secure_element.py::test_app_seed_needs_the_users_grant_and_is_per_app", "development"),
    "production-allows-reboot-samba": (
        "a production build answers REBOOT_SAMBA (the door to reflashing it)",
        "suites/security/test_lockdown.py::test_production_refuses_reboot_to_samba", "production"),
    "production-answers-kernel-cmd": (
        "a production build answers KERNEL_CMD (process, server and memory tables to anyone on USB)",
        "suites/security/test_lockdown.py::test_build_answers_as_its_declared_flavour", "production"),
    "screenshot-while-locked": (
        "a locked production build answers SCREENSHOT",
        "suites/security/test_trusted_display.py::test_locked_production_unit_refuses_screenshot_and_input",
        "production"),
    "network-stack-present": (
        "the build registers a network server apps can connect to",
        "suites/security/test_lockdown.py::test_no_network_server", "development"),
    "sideload-skips-cert-expiry": (
        "an app signed by an expired publisher certificate launches",
        "suites/security/test_permissions.py::test_publisher_certificate_validity_is_enforced[expired]", "development"),
    "sideload-cert-expires-a-second-early": (
        "a publisher certificate is taken as expired at its notAfter second, not after it",
        "suites/security/test_permissions.py::test_publisher_certificate_is_valid_through_both_edges[not-after]",
        "development"),
    "sideload-cert-active-a-second-late": (
        "a publisher certificate is taken as not yet active at its notBefore second, not before it",
        "suites/security/test_permissions.py::test_publisher_certificate_is_valid_through_both_edges[not-before]",
        "development"),
    "publisher-count-misses-the-not-before-second": (
        "GET_ALLOWED_PUBLISHER_COUNT counts a certificate as usable only from the second after its notBefore, "
        "while a launch takes it at that second",
        "suites/security/test_permissions.py::test_publisher_certificate_is_valid_through_both_edges[not-before]",
        "development"),
    "sideload-accepts-tampered-manifest": (
        "a sideloaded manifest edited after signing launches",
        "suites/security/test_permissions.py::test_tampered_manifest_does_not_launch", "development"),
    "sideload-launches-without-elf": (
        "a sideloaded bundle with no app.elf launches: with no ELF there is no signature to check, so none is",
        "suites/security/test_permissions.py::test_bundle_without_its_elf_does_not_launch", "development"),
    "sideload-shadows-foundation-app": (
        "a sideload may take the app id of a built-in Foundation app",
        "suites/security/test_permissions.py::test_sideload_cannot_take_a_foundation_app_id", "development"),
    "bootloader-accepts-partially-trusted": (
        "keyos-boot boots an image only one known signer signed (PartiallyTrusted)",
        "suites/security/test_firmware.py::test_device_refuses_bad_firmware[partially-trusted]", "development"),
    "bootloader-ignores-anti-rollback": (
        "keyos-boot boots a validly signed image older than the secure element's firmware timestamp",
        "suites/security/test_firmware.py::test_device_refuses_bad_firmware[rolled-back]", "development"),
    "bootloader-ignores-chip": (
        "keyos-boot boots a validly signed image made for another chip (magic blef, not PRM1)",
        "suites/security/test_firmware.py::test_device_refuses_bad_firmware[wrong-chip]", "development"),
    "sideload-manifest-any-publisher": (
        "a sideloaded manifest is accepted when any installed publisher signed it, not the ELF's own publisher",
        "suites/security/test_permissions.py::test_manifest_signed_by_another_key_does_not_launch", "development"),
    "sideload-manifest-not-bound-to-elf": (
        "a validly signed manifest launches with another validly signed ELF of its publisher (fileHashes unchecked)",
        "suites/security/test_permissions.py::test_manifest_is_bound_to_its_elf", "development"),
    "sideload-path-dotdot": (
        "LOAD_APP_FILE_BEGIN lets '..' parts through, so a sideload writes outside its own app's directory",
        "suites/security/test_permissions.py::test_sideload_paths_stay_inside_the_bundle", "development"),
    "certificate-installed-despite-fingerprint": (
        "INSTALL_CERTIFICATE stores the certificate before comparing the fingerprint, then answers Err",
        "suites/security/test_permissions.py::test_certificate_with_a_wrong_fingerprint_installs_nothing",
        "development"),
    "fs-grant-opens-every-location": (
        "a recorded access grant for one location opens every grant-gated location",
        "suites/security/test_isolation.py::test_airlock_with_its_grant_and_read_grant_is_not_write", "development"),
    "fs-user-grant-opens-usb": (
        "the fs server takes an app's User access records for the Usb location too (a User grant opens a USB drive)",
        "suites/security/test_isolation.py::test_a_locations_grants_open_it_and_no_other[User]", "development"),
    "fs-app-resources-writable": (
        "the fs server lets an app write its own AppResources (the signed bundle's resources/) as if it were AppData",
        "suites/security/test_isolation.py::test_own_resources_read_only", "development"),
    "fs-grants-outlive-process": (
        "the fs server keeps a process's access records after it exits, so a reused pid inherits them",
        "suites/security/test_isolation.py::test_grants_die_with_the_process", "development"),
    "kernel-isolates-only-foundation-memory": (
        "the kernel refuses to map a Foundation process's pages but maps a third-party app's to another",
        "suites/security/test_isolation.py::test_third_party_apps_cannot_read_each_others_memory", "development"),
    "app-seed-served-while-locked": (
        "a granted GetAppSeed is answered while the unit is locked instead of waiting for the login",
        "suites/security/test_secure_element.py::test_granted_app_seed_waits_for_the_login", "development"),
    "twelve-word-seed-stored-as-32-bytes": (
        "the secure element keeps a 12-word seed's 16 bytes of entropy zero-padded to 32, so it serves a 24-word seed "
        "and app seeds derived from another seed than the one the unit was provisioned with",
        "suites/security/test_secure_element.py::test_an_app_seed_follows_from_the_provisioned_seed", "development"),
    "pin-attempt-limit-not-ten": (
        "the secure element allows 11 login attempts before wiping, not MAX_LOGIN_ATTEMPTS = 10",
        "suites/security/test_secure_element.py::test_one_wrong_pin_leaves_exactly_one_attempt_less", "development"),
    "pin-attempts-restored-at-boot": (
        "power-on restores the PIN attempt count to ten, so a reboot between guesses defeats the wipe",
        "suites/security/test_secure_element.py::test_a_power_cycle_ends_the_login_and_keeps_the_failed_attempt",
        "development"),
    "login-survives-a-reboot": (
        "the login is not ended by a power loss or a boot, so a power-cycled unit comes back unlocked",
        "suites/security/test_secure_element.py::test_a_power_cycle_ends_the_login_and_keeps_the_failed_attempt",
        "development"),
    "wrong-pin-wipes-at-once": (
        "the first wrong PIN erases the seed, as if it had been the tenth",
        "suites/security/test_secure_element.py::test_one_wrong_pin_leaves_exactly_one_attempt_less", "development"),
    "last-attempt-refuses-right-pin": (
        "the secure element refuses the right PIN when one login attempt is left, so the tenth attempt is lost",
        "suites/security/test_secure_element.py::test_the_last_attempt_is_the_tenth_and_still_takes_the_right_pin",
        "development"),
    "security-words-ignore-pin": (
        "the secure element derives the security words from its serial and seed only, so every PIN prefix shows "
        "the same two words",
        "suites/security/test_secure_element.py::test_security_words_show_on_the_lock_screen", "development"),
    "login-keeps-failed-attempts": (
        "a correct login does not restore the attempt counter",
        "suites/security/test_secure_element.py::test_one_wrong_pin_leaves_exactly_one_attempt_less", "development"),
    "certificate-without-a-pem-decoded": (
        "an INSTALL_CERTIFICATE of a fingerprint and no PEM passes decoding, so a locked unit answers it Locked, "
        "not the malformed request's Err",
        "suites/security/test_permissions.py::test_sideload_and_certificates_wait_for_the_unlock", "development"),
    "certificate-of-16-kib-refused": (
        "INSTALL_CERTIFICATE refuses a PEM of exactly 16 KiB, the most THIRD_PARTY_CERTIFICATE_FORMAT.md allows",
        "suites/security/test_permissions.py::test_a_certificate_is_taken_up_to_16_kib_and_no_larger", "development"),
    "unreadable-min-keyos-version-ignored": (
        "app-manager launches an app whose minimum KeyOS version is no SemVer, as if the requirement were met",
        "suites/security/test_permissions.py::test_app_whose_keyos_requirement_cannot_be_read_does_not_launch",
        "development"),
    "developer-mode-gates-production-only": (
        "with Developer Mode off, a development build still takes sideloads and certificates",
        "suites/security/test_lockdown.py::test_developer_mode_off_refuses_sideload_and_certificates",
        "development"),
    # regressions written against the claims (suites/claims.yaml), each a check no suite made before
    "load-app-end-takes-an-incomplete-file": (
        "LOAD_APP_END swaps in a bundle while one of its files is still open, half uploaded",
        "suites/security/test_permissions.py::test_load_app_end_takes_only_a_whole_fresh_bundle", "development"),
    "load-app-chunk-overruns-its-size": (
        "LOAD_APP_CHUNK takes a chunk that runs past the size LOAD_APP_FILE_BEGIN declared",
        "suites/security/test_permissions.py::test_load_app_end_takes_only_a_whole_fresh_bundle", "development"),
    "load-app-chunk-without-a-file-crashes": (
        "LOAD_APP_CHUNK with no file open crashes the debug dispatcher, which drops the link instead of answering Err",
        "suites/security/test_permissions.py::test_a_chunk_with_no_file_open_is_refused", "development"),
    "load-app-begin-keeps-the-unfinished-session": (
        "LOAD_APP_BEGIN for the same app id resumes the unfinished session, so its staged files reach the next bundle",
        "suites/security/test_permissions.py::test_load_app_end_takes_only_a_whole_fresh_bundle", "development"),
    "load-app-end-while-locked": (
        "LOAD_APP_END skips the lock check the other LOAD_APP_* commands make, installing a bundle while locked",
        "suites/security/test_permissions.py::test_sideload_and_certificates_wait_for_the_unlock", "production"),
    "bootloader-anti-rollback-a-second-slack": (
        "keyos-boot refuses an image older than the anti-rollback value by more than a second only",
        "suites/security/test_firmware.py::test_device_refuses_bad_firmware[rolled-back-a-second]", "development"),
    "kernel-merges-a-fifth-range-into-the-last": (
        "MessagePermissions.add folds a fifth run of ids >= 64 into the last range instead of refusing it, permitting "
        "every undeclared id between them",
        "suites/security/test_permissions.py::test_a_fifth_run_of_high_ids_is_refused_not_merged", "development"),
    "kernel-keeps-touching-runs-apart": (
        "MessagePermissions.add joins a run to a range it overlaps but not to one it only touches, so touching runs "
        "take a range slot each and a later run finds none",
        "suites/security/test_permissions.py::test_touching_runs_share_one_range_slot", "development"),
    "kernel-merges-runs-one-apart": (
        "MessagePermissions.add merges a run into a range one id away, permitting the undeclared id between them",
        "suites/security/test_permissions.py::test_runs_one_id_apart_stay_apart", "development"),
    "certificate-fingerprint-judged-by-its-short-form": (
        "INSTALL_CERTIFICATE compares only the first and last 8 hex characters of the fingerprint (the UI's short form)",
        "suites/security/test_permissions.py::test_certificate_fingerprint_is_compared_whole", "development"),
    "min-keyos-version-exclusive": (
        "app-manager refuses an app whose min-keyos-version is exactly the running KeyOS (KeyOsVersionTooOld)",
        "suites/security/test_permissions.py::test_app_needing_exactly_this_keyos_launches", "development"),
    "launch-verdict-kept-from-the-first-launch": (
        "app-manager verifies a sideloaded app at its first launch only, so an expired certificate still launches it",
        "suites/security/test_permissions.py::test_certificate_validity_is_judged_at_every_launch", "development"),
    "crash-path-keeps-fs-grants": (
        "a panicked process's fs access records are not dropped (only an exit drops them): a reused PID inherits them",
        "suites/security/test_isolation.py::test_grants_die_with_a_crashed_process", "development"),
    "fs-usb-access-not-recorded": (
        "the fs server acknowledges GetUsbRead/WriteAccess without recording it, so Usb never opens with its grants",
        "suites/security/test_isolation.py::test_a_locations_grants_open_it_and_no_other[Usb]", "development"),
    "pin-judged-by-its-prefix": (
        "the secure element compares only as many typed digits as the PIN has: the PIN with digits more unlocks",
        "suites/security/test_secure_element.py::test_only_the_whole_pin_unlocks", "production"),
    "ctap-confirm-outlives-its-request": (
        "a Confirm nobody collected (its platform left) lets the next, different CTAP2 request through unprompted",
        "suites/security/test_fido.py::test_a_confirm_answers_only_the_request_it_was_shown_for", "development"),
    "ctap-confirm-answers-twice": (
        "a confirmed presence prompt is not spent: the very same request sent again later is answered again, "
        "unprompted, so one touch yields two signatures",
        "suites/security/test_fido.py::test_a_confirm_answers_its_request_once", "development"),
    "ctap-silent-assertion-claims-presence": (
        "getAssertion with up = false sets the UP flag in its authenticator data though nobody was asked",
        "suites/security/test_fido.py::test_a_silent_assertion_claims_no_presence", "development"),
    "ctap-counter-kept-per-rp": (
        "the signature counter is kept per RP id hash, not per credential, so a new registration for the RP resets "
        "the count of its older credential",
        "suites/security/test_fido.py::test_the_signature_counter_rises_with_every_assertion", "development"),
    "clock-ignores-developer-mode": (
        "SET_SYSTEM_TIME checks only the lock, not Developer Mode, so the clock every certificate is judged by moves "
        "with Developer Mode off",
        "suites/security/test_lockdown.py::test_developer_mode_off_refuses_sideload_and_certificates", "development"),
    "clock-takes-zero": (
        "SET_SYSTEM_TIME takes 0 (the clock set to 1970, before every certificate's not-before) instead of Err",
        "suites/security/test_lockdown.py::test_clock_takes_exactly_the_rtc_range", "development"),
    "bootloader-menu-offers-samba": (
        "a production keyos-boot is built with the debug Boot Menu: its menu offers '(Debug) SAM-BA mode', the ROM "
        "monitor that writes any image to the eMMC, to whoever holds the unit",
        "suites/security/test_firmware.py::test_boot_menu_offers_samba_only_on_a_development_bootloader",
        "production"),
    "bootloader-accepts-third-party": (
        "keyos-boot boots an image signed only in the second slot by a key it does not know (ThirdParty)",
        "suites/security/test_firmware.py::test_device_refuses_bad_firmware[developer-signed]", "production"),
    "ctap-dropped-prompt-allows": (
        "a FIDO user-presence prompt dropped unanswered (home button) lets the request through",
        "suites/security/test_fido.py::test_cancelled_or_dropped_presence_prompt_is_operation_denied",
        "development"),
    "ctap-prompt-over-lockscreen": (
        "the Security Keys presence prompt is drawn over the lock screen instead of waiting for the login",
        "suites/security/test_fido.py::test_no_presence_prompt_over_the_lock_screen", "development"),
    "ctap-accepts-uv-option": (
        "a makeCredential that demands user verification (option uv) is taken on with presence alone",
        "suites/security/test_fido.py::test_user_verification_is_never_claimed[registration]", "development"),
    "ctap-assertion-accepts-uv-option": (
        "a getAssertion that demands user verification (option uv) is answered after a presence prompt alone, not "
        "refused as an option the Prime lacks",
        "suites/security/test_fido.py::test_user_verification_is_never_claimed[assertion]", "development"),
    "ctap-ignores-rk-option": (
        "a makeCredential asking for a discoverable credential (option rk) is registered as a plain one after the "
        "presence prompt instead of refused UNSUPPORTED_OPTION",
        "suites/security/test_fido.py::test_a_malformed_request_is_refused_with_its_status_unprompted", "development"),
    "ctap-cose-key-wrong-curve": (
        "the registered credential's COSE key names curve P-384 (crv 2) for its P-256 key",
        "suites/security/test_fido.py::test_credentials_are_scoped_to_their_rp_id", "development"),
    "ctap-skips-non-map-allow-entries": (
        "a getAssertion whose allowList has an entry that is not a map skips that entry (answering NO_CREDENTIALS) "
        "instead of refusing the request CBOR_UNEXPECTED_TYPE",
        "suites/security/test_fido.py::test_a_malformed_request_is_refused_with_its_status_unprompted", "development"),
    "ctap-get-info-takes-a-parameter": (
        "an authenticatorGetInfo carrying a parameter is answered as if it had none, not refused INVALID_LENGTH",
        "suites/security/test_fido.py::test_a_malformed_request_is_refused_with_its_status_unprompted", "development"),
    "ctap-registers-without-a-shared-algorithm": (
        "a makeCredential whose pubKeyCredParams name no algorithm the Prime has (RS256 only) gets an ES256 "
        "credential after the presence prompt instead of UNSUPPORTED_ALGORITHM",
        "suites/security/test_fido.py::test_a_malformed_request_is_refused_with_its_status_unprompted", "development"),
    "ctap-credential-not-rp-scoped": (
        "credential ids are wrapped without the rpIdHash, so one RP's credential asserts for another",
        "suites/security/test_fido.py::test_credentials_are_scoped_to_their_rp_id", "development"),
    "fs-grant-not-bound-to-its-pid": (
        "the fs server finds a location's access record by location alone, so one app's Airlock grant opens the "
        "Airlock to every other running app",
        "suites/security/test_isolation.py::test_a_grant_opens_the_location_for_its_holder_only", "development"),
    "ctap-presence-matched-by-rp": (
        "the authenticator matches a re-sent request to its presence prompt by the command and RP alone, so a Confirm "
        "given to one assertion lets another assertion for the same RP, with another challenge, through unasked",
        "suites/security/test_fido.py::test_a_confirm_answers_only_the_request_it_was_shown_for[assertion]",
        "development"),
    "ctap-exclude-list-checks-its-first-entry-only": (
        "makeCredential looks only at the first entry of excludeList, so a credential this Prime holds listed second "
        "is registered again instead of answering CREDENTIAL_EXCLUDED",
        "suites/security/test_fido.py::test_a_registration_excluding_a_credential_it_holds_is_refused", "development"),
    "ctap-counter-frozen-on-assertion": (
        "getAssertion signs with the credential's counter as it stands without raising it, so two assertions carry "
        "the same counter",
        "suites/security/test_fido.py::test_the_signature_counter_rises_with_every_assertion", "development"),
    "sideload-one-signature-is-foundation": (
        "app-manager takes an app ELF signed by one trusted signer in the first slot only (PartiallyTrusted) for a "
        "Foundation app, as if both signatures were there",
        "suites/security/test_permissions.py::test_an_app_with_one_foundation_signature_does_not_launch", "development"),
    "grant-per-group-not-subgroup": (
        "app-manager keeps grants per permission group, not per subgroup, so allowing User files also allows Airlock "
        "files (both file-system.*) without asking",
        "suites/security/test_permissions.py::test_a_subgroups_grant_leaves_its_sibling_subgroups_asking", "development"),
    "certificate-key-on-any-curve": (
        "INSTALL_CERTIFICATE takes a publisher certificate whose key is on any elliptic curve (P-256, say), not only "
        "secp256k1",
        "suites/security/test_permissions.py::test_certificate_outside_the_publisher_profile_installs_nothing"
        "[not-secp256k1]", "development"),
    "certificate-profile-flaws-must-all-be-there": (
        "app-manager refuses a publisher certificate only when it is a CA *and* lacks digitalSignature *and* lacks "
        "codeSigning, so a CA certificate, or one for another use, installs",
        "suites/security/test_permissions.py::test_certificate_outside_the_publisher_profile_installs_nothing",
        "development"),
    "fs-exit-keeps-write-grants": (
        "the fs server drops an exited process's read access records but keeps its write ones: a reused PID can write "
        "where its predecessor could",
        "suites/security/test_isolation.py::test_grants_die_with_the_process", "development"),
    "bootloader-raises-anti-rollback-before-verifying": (
        "keyos-boot raises the anti-rollback value to a verified image's timestamp before judging its trust, so a "
        "refused PartiallyTrusted image a second newer makes the unit refuse its own build",
        "suites/security/test_firmware.py::test_device_refuses_bad_firmware[partially-trusted-a-second-later]",
        "development"),
}


class UnknownDefect(ValueError):
    pass


@dataclass(frozen=True)
class Defects:
    """The defects a build carries; an unknown name is refused, so a typo never yields a good build."""

    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: list[str] | tuple[str, ...] | frozenset[str] = ()) -> "Defects":
        unknown = set(names) - set(CATALOG)
        if unknown:
            raise UnknownDefect(f"unknown seeded defect(s) {sorted(unknown)}; known: {', '.join(sorted(CATALOG))}")
        return cls(frozenset(names))

    def has(self, name: str) -> bool:
        if name not in CATALOG:
            raise UnknownDefect(f"check asks for unknown defect {name!r}")
        return name in self.names
