"""Property test: any bytes, once stored, are kept and reach a final state."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from gateway.config import load_settings
from gateway.inbound.process import process_inbound
from gateway.inbound.spool import IncomingMail, load_raw, store_mails
from gateway.models import InboundMessage
from gateway.runtime import Runtime
from tests.conftest import build_mail, make_env
from tests.inbound.test_parse_property import mutated_mail

FINAL_STATES = {"processed", "ignored", "unmatched"}


def mutated_customer_mail() -> st.SearchStrategy[bytes]:
    return st.one_of(mutated_mail(), st.binary(max_size=3000), st.just(build_mail()))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=mutated_customer_mail())
def test_stored_mail_is_kept_and_finished(tmp_path: Path, raw: bytes) -> None:
    folder = tmp_path / f"gw-{abs(hash(raw))}"
    runtime = Runtime(load_settings(make_env(folder).config))
    runtime.prepare_store()
    [inbound_id] = store_mails(
        runtime.engine, runtime.settings.store.data_dir, [IncomingMail(raw, "test", {})]
    )

    process_inbound(runtime, inbound_id)

    with Session(runtime.engine) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        assert row.state in FINAL_STATES, (row.state, row.reason, row.error)
        assert load_raw(row) == raw
    runtime.engine.dispose()
