-- The attendance register: classes, their pupils, and one mark per pupil and day.
CREATE TABLE classes (
  id text PRIMARY KEY,
  name text NOT NULL
);

CREATE TABLE pupils (
  id text PRIMARY KEY,
  class_id text NOT NULL REFERENCES classes (id),
  given_name text NOT NULL,
  family_name text NOT NULL,
  active boolean NOT NULL DEFAULT true
);
CREATE INDEX pupils_class_id ON pupils (class_id) WHERE active;

-- One mark per pupil and day whatever the class: posting the same mark again changes nothing.
CREATE TABLE attendance_marks (
  pupil_id text NOT NULL REFERENCES pupils (id),
  day date NOT NULL,
  class_id text NOT NULL REFERENCES classes (id),
  status text NOT NULL CHECK (status IN ('present', 'absent', 'late')),
  note text,
  marked_by text,
  marked_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pupil_id, day)
);
CREATE INDEX attendance_marks_class_day ON attendance_marks (class_id, day);
