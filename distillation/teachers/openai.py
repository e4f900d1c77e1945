"""The ``openai`` backend: any server that speaks the OpenAI completions API.

vLLM, TGI, the llama.cpp server and Ollama all serve ``/v1/completions`` (the few-shot prompts
are plain text, so that is the default) and ``/v1/chat/completions``. Requests run on a bounded
thread pool; 429 and 5xx answers and timeouts are retried with exponential backoff (honouring
``Retry-After``); an unreachable server or a refused request ends the run with a message that
says what to fix. Outputs already stored stay stored, so the run resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from distillation.errors import ConfigError
from distillation.teacher_config import TeacherConfig
from distillation.teachers import GenerationRequest, GenerationResult, TeacherError

BASE_URL_ENV = "OPENAI_BASE_URL"
# The OpenAI API accepts at most four stop sequences; the rest are applied on our side.
MAX_SERVER_STOPS = 4
MAX_RETRY_AFTER_S = 60.0


class OpenAITeacher:
    """Generate through an OpenAI-compatible HTTP server."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        endpoint: str = "completions",
        concurrency: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.sampling = (
            {"temperature": temperature, "top_p": top_p, "seed": seed}
            if do_sample
            else {"temperature": 0.0, "seed": seed}
        )
        self.sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            timeout=timeout_s,
            headers=headers,
            limits=httpx.Limits(max_connections=concurrency),
        )

    @classmethod
    def from_config(cls, config: TeacherConfig) -> OpenAITeacher:
        base_url = config.base_url or os.environ.get(BASE_URL_ENV, "")
        if not base_url:
            raise ConfigError(
                f"the openai backend needs a server: set teacher.base_url or ${BASE_URL_ENV} "
                "(for example http://127.0.0.1:8000/v1)"
            )
        return cls(
            base_url=base_url,
            model=config.model,
            api_key=os.environ.get(config.api_key_env) or None,
            endpoint=config.endpoint,
            concurrency=config.concurrency,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            do_sample=config.do_sample,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed,
        )

    @property
    def url(self) -> str:
        path = "chat/completions" if self.endpoint == "chat" else "completions"
        return f"{self.base_url}/{path}"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order, with at most ``concurrency`` requests in flight."""
        if any(request.contrast_prompt is not None for request in requests):
            raise ConfigError(
                "contrastive decoding needs the model's token probabilities: use the hf backend "
                "or set teacher.contrastive_lambda = 0"
            )
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._complete, requests))

    def close(self) -> None:
        self.client.close()

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.name,
            "max_tokens": request.max_new_tokens,
            **self.sampling,
        }
        if request.stop:
            payload["stop"] = list(request.stop[:MAX_SERVER_STOPS])
        if self.endpoint == "chat":
            payload["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            payload["prompt"] = request.prompt
        return payload

    def _complete(self, request: GenerationRequest) -> GenerationResult:
        response = self._post(self._payload(request))
        try:
            body = response.json()
            choice = body["choices"][0]
            text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
            finish_reason = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError):
            raise TeacherError(
                f"{self.url} answered with something that is not an OpenAI completion: "
                f"{response.text[:200]!r}"
            ) from None
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise TeacherError(f"{self.url} returned a non-text completion: {text!r}")
        usage = body.get("usage") or {}
        return GenerationResult(
            text=text,
            hit_limit=finish_reason == "length",
            new_tokens=int(usage.get("completion_tokens") or 0),
        )

    def _post(self, payload: dict[str, Any]) -> httpx.Response:
        problem = ""
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                backoff = self.backoff_s * 2 ** (attempt - 1)
                self.sleep(retry_after if retry_after is not None else backoff)
                retry_after = None
            try:
                response = self.client.post(self.url, json=payload)
            except httpx.ConnectError as error:
                problem = f"cannot reach the teacher server at {self.base_url} ({error})"
                continue
            except httpx.TimeoutException:
                problem = f"{self.url} did not answer within {self.client.timeout.read} s"
                continue
            except httpx.HTTPError as error:
                problem = f"request to {self.url} failed: {error}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                problem = f"{self.url} answered {response.status_code}: {response.text[:200]}"
                retry_after = _retry_after(response)
                continue
            if response.status_code >= 400:
                raise TeacherError(
                    f"{self.url} refused the request ({response.status_code}): "
                    f"{response.text[:300]} -- check teacher.model and teacher.endpoint"
                )
            return response
        raise TeacherError(f"{problem}; gave up after {self.max_retries + 1} attempts")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value is not None else None
    except ValueError:
        return None
