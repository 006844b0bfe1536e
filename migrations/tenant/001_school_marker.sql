-- Which school this database belongs to, written once when the database is provisioned, so an
-- operator (and the tests) can check that a connection string leads to the school it claims to.
CREATE TABLE school_marker (
  school_id text PRIMARY KEY,
  single_row boolean NOT NULL DEFAULT true UNIQUE CHECK (single_row),
  created_at timestamptz NOT NULL DEFAULT now()
);
