"""The official ThingSpace Python SDK (module `verizon`) against m2m-session, unmodified but for
its base URLs: the SDK has no custom-URL option, so Production's entries of the `environments`
map are pointed at the server under test.

Environment: M2M_BASE (http://127.0.0.1:PORT), M2M_CLIENT_ID, M2M_CLIENT_SECRET, M2M_USERNAME,
M2M_PASSWORD; M2M_SIMULATOR=1 against `serve --simulator`, where client and user do not exist
until this script first uses them. Exits non-zero, with the failed check, on any mismatch.
"""

import os
import sys

from verizon.configuration import Configuration, Environment, Server
from verizon.exceptions.connectivity_management_result_exception import (
    ConnectivityManagementResultException,
)
from verizon.http.auth.thingspace_oauth import ThingspaceOauthCredentials
from verizon.http.auth.vz_m2m_token import VZM2mTokenCredentials
from verizon.models.log_in_request import LogInRequest
from verizon.models.session_reset_password_request import SessionResetPasswordRequest
from verizon.verizon_client import VerizonClient

BASE = os.environ["M2M_BASE"]
Configuration.environments[Environment.PRODUCTION][Server.THINGSPACE] = BASE + "/api"
Configuration.environments[Environment.PRODUCTION][Server.OAUTH_SERVER] = BASE + "/api/ts/v1"

CREDENTIALS = ThingspaceOauthCredentials(
    oauth_client_id=os.environ["M2M_CLIENT_ID"],
    oauth_client_secret=os.environ["M2M_CLIENT_SECRET"],
)
USERNAME = os.environ["M2M_USERNAME"]
PASSWORD = os.environ["M2M_PASSWORD"]


def client(session_token=None):
    return VerizonClient(
        environment=Environment.PRODUCTION,
        thingspace_oauth_credentials=CREDENTIALS,
        vz_m2m_token_credentials=(
            VZM2mTokenCredentials(vz_m2m_token=session_token) if session_token else None
        ),
    )


def expect_error(call, code, what):
    try:
        call()
    except ConnectivityManagementResultException as e:
        assert e.response_code == 400, f"{what}: status {e.response_code}"
        assert e.error_code == code, f"{what}: errorCode {e.error_code!r}, expected {code!r}"
        return
    raise AssertionError(f"{what}: no ConnectivityManagementResultException")


def main():
    # The OAuth token fetch (client credentials, Basic auth) as the SDK does it.
    token = client().auth_managers["thingspace_oauth"].fetch_token()
    assert token.access_token and token.token_type.lower() == "bearer", vars(token)
    assert 0 < token.expires_in <= 3600, token.expires_in

    sessions = client().session_management
    if os.environ.get("M2M_SIMULATOR") == "1":
        # The simulator creates the user at the first login, with the password it brings.
        first = sessions.start_connectivity_management_session(
            LogInRequest(username=USERNAME, password=PASSWORD)
        )
        assert first.status_code == 200, first.status_code
        client(first.body.session_token).session_management.end_connectivity_management_session()
    expect_error(
        lambda: sessions.start_connectivity_management_session(
            LogInRequest(username=USERNAME, password="not-the-password")
        ),
        "UnifiedWebService.REQUEST_FAILED.Login.InvalidCredentials",
        "wrong password",
    )

    login = sessions.start_connectivity_management_session(
        LogInRequest(username=USERNAME, password=PASSWORD)
    )
    assert login.status_code == 200, login.status_code
    session = login.body.session_token
    assert session and len(session) == 36, session

    with_session = client(session).session_management
    reset = with_session.reset_connectivity_management_password(
        SessionResetPasswordRequest(old_password=PASSWORD)
    )
    assert reset.status_code == 200, reset.status_code
    new_password = reset.body.new_password
    assert new_password and new_password != PASSWORD

    logout = with_session.end_connectivity_management_session()
    assert logout.status_code == 200, logout.status_code
    assert logout.body.session_token == session, vars(logout.body)

    # The ended session is refused, as the platform refuses an expired one.
    expect_error(
        with_session.end_connectivity_management_session,
        "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired",
        "ended session",
    )
    # And the new password is the one that works now.
    again = sessions.start_connectivity_management_session(
        LogInRequest(username=USERNAME, password=new_password)
    )
    assert again.status_code == 200, again.status_code
    print("official Python SDK: token, wrong password, login, reset, logout, ended session, new login: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
