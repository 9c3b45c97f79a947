"""The worker process: RQ jobs, the Graph API client, scheduling and the sinks; never imports Flask."""
