"""Application factory, health check and error pages."""

from lti_tool import create_app


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_an_unreachable_database(tmp_path, tool_keys_dir):
    app = create_app({"instance_path": tmp_path, "keys_dir": tool_keys_dir,
                      "database_url": "postgresql://nobody@127.0.0.1:1/none"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There is nothing at this address" in response.get_data(as_text=True)


def test_launch_needs_post(client):
    assert client.get("/lti/launch").status_code == 405


def test_embedded_defaults(tmp_path, monkeypatch):
    for name in ("LTI_TOOL_DATABASE_URL", "LTI_TOOL_BASE_URL", "LTI_TOOL_SECRET_KEY",
                 "LTI_TOOL_INLINE_WORKER"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"instance_path": tmp_path})
    settings = app.config["SETTINGS"]
    assert settings.database_url == f"sqlite:///{tmp_path / 'pathwise.sqlite3'}"
    assert settings.base_url == "http://localhost:5000"
    assert settings.inline_worker is True
    # The generated secret is kept, so every process of the install agrees.
    assert create_app({"instance_path": tmp_path}).config["SECRET_KEY"] == settings.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_login_with_the_database_down_is_a_503_not_a_500(tmp_path, tool_keys_dir):
    app = create_app({"instance_path": tmp_path, "keys_dir": tool_keys_dir,
                      "database_url": "postgresql://nobody@127.0.0.1:1/none"})
    response = app.test_client().post("/lti/login", data={
        "iss": "https://lms.example", "login_hint": "u",
        "target_link_uri": "http://localhost:5000/lti/launch"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert 'data-error-code="SERVICE_UNAVAILABLE"' in response.get_data(as_text=True)
