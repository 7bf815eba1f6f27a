"""`provision watch`: scheduled verification of a site by the controller, and alerts when a control fails.

The watcher's own folder is <site state>/watch/ (mode 0700): its configuration (site file, keys folder, the
notification command; mode 0600, never taken from the site file), when each schedule last ran, the alert state per
control, the tick's log and lock. The scheduler (a systemd timer or a cron.d file) only runs `provision watch tick`.
"""
