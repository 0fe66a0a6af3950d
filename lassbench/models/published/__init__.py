"""Published LASS systems (LASS-Net release, AudioSep, DCASE 2024 Task 9 baseline, AudioSep-DP) under their released
module names, with strict checkpoint loading: see :mod:`.systems` and :mod:`.loading`."""
