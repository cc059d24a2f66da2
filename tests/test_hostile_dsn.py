"""Hostile DSNs (issue 25): any user and password (raw or percent-encoded) parse to themselves, and no
message, masked form or recorded form ever shows the password; anything that does not parse is a
one-line DsnError without it."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tdetl.drivers import open_source
from tdetl.dsn import parse_dsn
from tdetl.errors import TdetlError
from tdetl.options import Options

_USER = st.text(st.characters(blacklist_characters=":/@?#&", blacklist_categories=("Cs", "Cc")), min_size=1,
                max_size=12)
_PASSWORD = st.text(st.characters(blacklist_characters="?#", blacklist_categories=("Cs",)), min_size=6, max_size=24)
_HOST = st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(_USER, _PASSWORD, _HOST, st.integers(1, 65535), st.booleans(), st.sampled_from(["taos", "taos+ws", "mqtt"]))
def test_property_credentials_parse_and_never_show(user: str, password: str, host: str, port: int, encode: bool,
                                                   scheme: str) -> None:
    written = quote(password, safe="") if encode else password
    if not encode and "%" in password:
        written = password.replace("%", "%25")  # a raw % would be read as an escape: write it encoded
    text = f"{scheme}://{quote(user, safe='')}:{written}@{host}:{port}/db?token=T0ps3cret&x=1"
    assume(written not in f"{scheme}://{quote(user, safe='')}:***@{host}:{port}/db?token=***&x=1no_such_param")
    d = parse_dsn(text)
    assert (d.user, d.password, d.host, d.port, d.object) == (user, password, host, port, "db")
    for shown in (d.masked(), d.without_password()):
        assert written not in shown and "T0ps3cret" not in shown
    try:
        open_source(parse_dsn(text.replace("x=1", "no_such_param=1")), Options())
    except TdetlError as e:
        dsn_shown = str(e).split(": unknown parameter")[0]  # the rest lists the driver's parameter names
        assert written not in dsn_shown and "T0ps3cret" not in str(e) and "\n" not in str(e)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_property_any_text_parses_or_is_refused_in_one_line(text: str) -> None:
    try:
        d = parse_dsn(text)
    except TdetlError as e:
        assert "\n" not in str(e)
        return
    assert d.driver and d.masked() is not None
