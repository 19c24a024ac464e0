"""``make bench``: the gateway measured beside nginx and HAProxy in one run."""
