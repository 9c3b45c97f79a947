"""igrelay: Meta (Instagram) webhooks in, fresh Instagram insights out."""
