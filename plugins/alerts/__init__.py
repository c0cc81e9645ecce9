"""memras's built-in alert hooks, registered in the ``memras.alerts`` entry-point group
exactly as third-party hooks are: exec, webhook, syslog, email, prometheus."""
