-- The legacy shard a school lives on: a shard of LEGACY_UPSTREAMS, whose upstreams serve that
-- school's legacy paths and no other school's. NULL: the main legacy routing table.
ALTER TABLE tenants ADD COLUMN legacy text CHECK (legacy ~ '^[a-z][a-z0-9_-]{0,62}$');
