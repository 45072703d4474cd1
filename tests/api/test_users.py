"""User accounts changed by name: a new password or disabling revokes the tokens issued before,
a removed user is gone, and an unknown name is refused with the field it names."""

from __future__ import annotations

import uuid

import pytest

from api.users import (
    UserError,
    authenticate,
    create_user,
    delete_user,
    get_user,
    revoke_tokens,
    set_active,
    set_password,
    token_subject,
)

pytestmark = pytest.mark.integration


def _version(conn, name: str) -> int:
    user = get_user(conn, username=name)
    assert user is not None
    found = token_subject(conn, user.id)
    assert found is not None
    return found[1]


def test_changes_by_name_revoke_tokens_and_refuse_unknown_names(engine) -> None:
    name = f"t-users-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        create_user(conn, name, "first-pass-1", "operator")
        v0 = _version(conn, name)
        set_password(conn, name, "second-pass-2")
        assert _version(conn, name) == v0 + 1
        assert authenticate(conn, name, "first-pass-1") is None
        assert authenticate(conn, name, "second-pass-2") is not None
        assert set_active(conn, name, False).active is False
        assert _version(conn, name) == v0 + 2  # disabling revokes
        assert authenticate(conn, name, "second-pass-2") is None  # disabled: no sign-in
        assert set_active(conn, name, True).active is True
        assert _version(conn, name) == v0 + 2  # enabling revokes nothing
        revoke_tokens(conn, name)
        assert _version(conn, name) == v0 + 3
        delete_user(conn, name)
        assert get_user(conn, username=name) is None
        for change in (
            lambda: set_password(conn, name, "third-pass-3"),
            lambda: set_active(conn, name, True),
            lambda: revoke_tokens(conn, name),
            lambda: delete_user(conn, name),
        ):
            with pytest.raises(UserError) as refused:
                change()
            assert refused.value.field == "username" and name in refused.value.reason
