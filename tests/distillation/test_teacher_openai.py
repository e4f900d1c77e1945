from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from distillation.errors import ConfigError
from distillation.generation import teacher_outputs_generate
from distillation.store import TeacherStore
from distillation.teacher_config import TeacherConfig
from distillation.teachers import GenerationRequest, TeacherError
from distillation.teachers.openai import OpenAITeacher
from distillation.types import Example

# (status, body, extra headers) for one request; the default answers every prompt.
Reply = tuple[int, dict[str, Any], dict[str, str]]


@dataclass
class FakeServer:
    """An OpenAI-compatible server on loopback whose answers each test scripts."""

    url: str
    script: list[Reply] = field(default_factory=list)  # consumed first, one per request
    delay_s: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, payload: dict[str, Any]) -> Reply:
        if self.script:
            return self.script.pop(0)
        prompt = payload.get("prompt") or payload["messages"][-1]["content"]
        text = f"Because of {prompt[-12:]}."
        if path.endswith("/chat/completions"):
            choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        else:
            choice = {"text": text, "finish_reason": "stop"}
        return 200, {"choices": [choice], "usage": {"completion_tokens": 4}}, {}


@pytest.fixture
def server() -> Iterator[FakeServer]:
    state = FakeServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.received.append(payload)
                state.headers.append(dict(self.headers))
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                status, body, extra = state.answer(self.path, payload)
            time.sleep(state.delay_s)
            with state.lock:
                state.in_flight -= 1
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (timeout tests)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def teacher_for(server: FakeServer, **options: Any) -> tuple[OpenAITeacher, list[float]]:
    waits: list[float] = []
    options.setdefault("backoff_s", 0.01)
    teacher = OpenAITeacher(base_url=server.url, model="llama-13b", sleep=waits.append, **options)
    return teacher, waits


def prompts(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(f"prompt number {i:02d}", 32, ("\n\n",)) for i in range(n)]


def test_it_completes_prompts_in_order_with_the_configured_request(server: FakeServer) -> None:
    teacher, _ = teacher_for(server)

    results = teacher.generate(prompts(3))

    assert [result.text for result in results] == [
        f"Because of pt number {i:02d}." for i in range(3)
    ]
    assert not any(result.hit_limit for result in results)
    request = next(r for r in server.received if r["prompt"] == "prompt number 00")
    assert request == {
        "model": "llama-13b",
        "prompt": "prompt number 00",
        "max_tokens": 32,
        "temperature": 0.0,
        "seed": 0,
        "stop": ["\n\n"],
    }


def test_the_chat_endpoint_sends_messages(server: FakeServer) -> None:
    teacher, _ = teacher_for(server, endpoint="chat")

    (result,) = teacher.generate(prompts(1))

    assert result.text == "Because of pt number 00."
    assert server.received[0]["messages"] == [{"role": "user", "content": "prompt number 00"}]


def test_a_length_finish_reason_marks_the_output_as_cut(server: FakeServer) -> None:
    server.script = [(200, {"choices": [{"text": "It is", "finish_reason": "length"}]}, {})]
    teacher, _ = teacher_for(server)

    (result,) = teacher.generate(prompts(1))

    assert result.hit_limit


def test_no_more_requests_than_the_concurrency_bound_are_in_flight(server: FakeServer) -> None:
    server.delay_s = 0.05
    teacher, _ = teacher_for(server, concurrency=3)

    results = teacher.generate(prompts(12))

    assert len(results) == 12
    assert server.max_in_flight == 3


def test_429_and_5xx_are_retried_with_exponential_backoff(server: FakeServer) -> None:
    server.script = [
        (503, {"error": "loading"}, {}),
        (500, {"error": "oops"}, {}),
        (429, {"error": "slow down"}, {"Retry-After": "0.5"}),
    ]
    teacher, waits = teacher_for(server, max_retries=3)

    (result,) = teacher.generate(prompts(1))

    assert result.text == "Because of pt number 00."
    assert waits == [0.01, 0.02, 0.5]  # doubling, then the server's Retry-After


def test_it_gives_up_after_the_last_retry(server: FakeServer) -> None:
    server.script = [(502, {"error": "bad gateway"}, {})] * 3
    teacher, waits = teacher_for(server, max_retries=2)

    with pytest.raises(TeacherError, match=r"answered 502.*gave up after 3 attempts"):
        teacher.generate(prompts(1))
    assert len(waits) == 2


def test_a_client_error_is_not_retried_and_says_what_to_check(server: FakeServer) -> None:
    server.script = [(404, {"error": "model 'llama-13b' not found"}, {})]
    teacher, waits = teacher_for(server)

    with pytest.raises(TeacherError, match=r"refused the request \(404\).*teacher.model"):
        teacher.generate(prompts(1))
    assert waits == []


def test_a_slow_server_times_out_and_is_retried(server: FakeServer) -> None:
    server.delay_s = 1.0
    teacher, waits = teacher_for(server, timeout_s=0.1, max_retries=1)

    with pytest.raises(TeacherError, match=r"did not answer within 0.1 s"):
        teacher.generate(prompts(1))
    assert len(server.received) == 2
    assert waits == [0.01]


def test_an_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens
    teacher = OpenAITeacher(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, sleep=lambda s: None
    )

    with pytest.raises(TeacherError, match=rf"cannot reach the teacher server at .*:{port}/v1"):
        teacher.generate(prompts(1))


def test_a_reply_that_is_not_a_completion_is_an_error(server: FakeServer) -> None:
    server.script = [(200, {"detail": "hello"}, {})]
    teacher, _ = teacher_for(server)

    with pytest.raises(TeacherError, match="not an OpenAI completion"):
        teacher.generate(prompts(1))


def test_the_config_and_environment_choose_server_and_key(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("TEACHER_KEY", "secret-token")
    config = TeacherConfig(backend="openai", model="served", api_key_env="TEACHER_KEY")

    teacher = OpenAITeacher.from_config(config)
    teacher.generate(prompts(1))

    assert teacher.base_url == server.url
    assert server.headers[0]["Authorization"] == "Bearer secret-token"
    assert server.received[0]["model"] == "served"


def test_a_missing_server_address_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    with pytest.raises(ConfigError, match=r"set teacher.base_url or \$OPENAI_BASE_URL"):
        OpenAITeacher.from_config(TeacherConfig(backend="openai", model="m"))


def test_contrastive_requests_are_refused(server: FakeServer) -> None:
    teacher, _ = teacher_for(server)

    with pytest.raises(ConfigError, match="contrastive decoding needs"):
        teacher.generate([GenerationRequest("p", 8, contrast_prompt="q")])


class Interrupting:
    """Wraps a backend and raises on its n-th call, as a killed run would stop."""

    def __init__(self, inner: OpenAITeacher, fail_on_call: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.fail_on_call = fail_on_call

    def generate(self, requests: list[GenerationRequest]) -> Any:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt
        return self.inner.generate(requests)


def test_generation_through_a_server_fills_the_store_and_resumes_without_repeats(
    server: FakeServer, tmp_path: Path
) -> None:
    examples = [
        Example(f"q{i}", f"Where is thing {i}?", ("attic", "desk", "lake", "shop", "zoo"), "desk")
        for i in range(5)
    ]
    config = TeacherConfig(
        backend="openai", model="llama-13b", base_url=server.url, batch_size=2, counterfactuals=1
    )
    interrupted: Callable[[], Any] = lambda: teacher_outputs_generate(  # noqa: E731
        examples=examples,
        teacher=config,
        store_dir=tmp_path,
        progress=False,
        backend=Interrupting(teacher_for(server)[0], fail_on_call=4),
    )
    with pytest.raises(KeyboardInterrupt):
        interrupted()
    sent_before = [request["prompt"] for request in server.received]
    stored_before = len(list(TeacherStore(tmp_path).records()))
    server.received.clear()

    summary = teacher_outputs_generate(
        examples=examples, teacher=config, store_dir=tmp_path, progress=False
    )

    sent_after = [request["prompt"] for request in server.received]
    assert stored_before == 5  # the explain batches (2, 2, 1) were stored before the stop
    assert summary.skipped == stored_before
    # explain, critique, revise, one counterfactual and the gold answer's explanation
    assert summary.done == 5 * 5 - stored_before
    assert not set(sent_before) & set(sent_after)  # no finished prompt was sent twice
    assert len(TeacherStore(tmp_path).latest()) == 5 * 5
