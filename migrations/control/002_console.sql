-- The migration console's change log and its scheduled changes.
CREATE TABLE console_changes (
  id uuid PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  who text NOT NULL,
  route text NOT NULL,
  flag text NOT NULL,
  what text NOT NULL,
  before jsonb NOT NULL,
  after jsonb NOT NULL,
  -- Schools whose side changed.
  schools text[] NOT NULL DEFAULT '{}',
  override_reason text,
  revert_of uuid REFERENCES console_changes (id),
  scheduled_by text
);
CREATE INDEX console_changes_at ON console_changes (at DESC);
CREATE INDEX console_changes_schools ON console_changes USING gin (schools);

-- A move to make later. `from_version` is the flag's state it was planned from: a change that
-- finds the flag elsewhere at `due_at` is not applied (status skipped, with the reason).
CREATE TABLE console_schedule (
  id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  due_at timestamptz NOT NULL,
  who text NOT NULL,
  route text NOT NULL,
  flag text NOT NULL,
  what text NOT NULL,
  move jsonb NOT NULL,
  from_version text NOT NULL,
  override_reason text,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'skipped', 'cancelled')),
  outcome text,
  change_id uuid REFERENCES console_changes (id),
  settled_at timestamptz
);
CREATE INDEX console_schedule_due ON console_schedule (due_at) WHERE status = 'pending';
