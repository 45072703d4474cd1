"""Web security: token versions (revocation) and failed sign-ins (backoff and lockout).

`users.token_version` is written into every token; changing a password, disabling a user or
signing out everywhere increments it, so every token issued before stops working at once.
`login_failures` counts failed sign-ins per user name and per client address across every API
worker process; a key with too many recent failures is locked for a growing time.
"""

from alembic import op

revision = "0009_websec_sessions"
down_revision = "0005_api"
branch_labels = None
depends_on = None


UPGRADE = """
ALTER TABLE users ADD COLUMN IF NOT EXISTS token_version integer NOT NULL DEFAULT 0;

CREATE TABLE login_failures (
    key             text PRIMARY KEY CHECK (length(key) <= 200),  -- 'user:<name>' | 'addr:<ip>'
    failures        integer NOT NULL DEFAULT 0,
    last_at         timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS login_failures;
ALTER TABLE users DROP COLUMN IF EXISTS token_version;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
