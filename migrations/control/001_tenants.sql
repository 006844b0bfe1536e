-- The schools ficus serves. Every change notifies the running processes (channel ficus_tenants),
-- which then reload the whole table; the payload is empty because a reload needs no detail.
CREATE TABLE tenants (
  id text PRIMARY KEY CHECK (id ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  name text NOT NULL,
  -- Either a full connection string, or a database name for TENANT_DATABASE_URL_TEMPLATE.
  database_url text,
  database_name text,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'maintenance', 'suspended')),
  cohorts text[] NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION ficus_tenants_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('ficus_tenants', '');
  RETURN NULL;
END
$$;

-- Per statement: a bulk update of 1,500 rows sends one notification, not 1,500.
CREATE TRIGGER tenants_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenants
FOR EACH STATEMENT EXECUTE FUNCTION ficus_tenants_changed();
