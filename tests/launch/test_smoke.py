from tests.support.flows import launch


def test_valid_student_launch(client, lms):
    response, _ = launch(client, lms)
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "Hello, Ada Lovelace" in page.get_data(as_text=True)
