"""Vision schema: per-camera vision settings, learned quality references, inspection rounds.

Inspection results are written one row per camera as the round goes, keyed by (round, device),
so an interrupted round resumes where it stopped.
"""

from alembic import op

revision = "0006_vision"
down_revision = "0001_foundation"
branch_labels = ("vision",)
depends_on = None


UPGRADE = r"""
-- What the vision worker does with a camera (vision.pipeline.CameraConfig as JSON).
CREATE TABLE vision_cameras (
    device_id       char(20) PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    config          jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Each camera's learned picture statistics (vision.reference.Reference.to_bytes()).
CREATE TABLE vision_references (
    device_id       char(20) PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    reference       bytea NOT NULL,
    learned_at      timestamptz NOT NULL DEFAULT now(),
    approved_by     text,
    approved_at     timestamptz
);

CREATE TABLE inspection_rounds (
    id              bigserial PRIMARY KEY,
    region_code     text NOT NULL,
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'done', 'interrupted')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    total           integer NOT NULL DEFAULT 0 CHECK (total >= 0)
);
CREATE INDEX inspection_rounds_region_idx ON inspection_rounds (region_code, started_at DESC);

CREATE TABLE inspection_results (
    round_id        bigint NOT NULL REFERENCES inspection_rounds(id) ON DELETE CASCADE,
    device_id       char(20) NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    ts              timestamptz NOT NULL DEFAULT now(),
    intact          boolean NOT NULL,
    faults          jsonb NOT NULL DEFAULT '[]'::jsonb,
    thumbnail       bytea,
    error           text,
    PRIMARY KEY (round_id, device_id)
);
CREATE INDEX inspection_results_faulty_idx ON inspection_results (round_id) WHERE NOT intact;
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS inspection_results, inspection_rounds, vision_references, vision_cameras;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
