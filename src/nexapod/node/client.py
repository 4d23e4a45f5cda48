"""An HTTP client of the coordinator's ``/v1`` API that signs what it sends.

Shared by the node agent and the CLI. Problem responses become ``RemoteError``
with the coordinator's code, so callers act on ``error.code``; network failures are
retried a bounded number of times with backoff, each time with a fresh signature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from nexapod.crypto import SigningKey, b64encode, sign_request
from nexapod.errors import NexaPodError
from nexapod.protocol.v1 import (
    HEADER_RESULT_DOCUMENT,
    HEADER_RESULT_SIGNATURE,
    ChallengeAnswer,
    ChallengeList,
    ChallengeOutcome,
    CheckpointUpload,
    FailureReport,
    JobList,
    JobView,
    LeaseRequest,
    LeaseResponse,
    NodeView,
    PoolMemberView,
    PoolPreferences,
    RegisterNodeRequest,
    RegisterUserRequest,
    ReleaseList,
    ReleaseManifestFile,
    ReleaseView,
    ResultDocument,
    ResultItem,
    SpectrumNeighbours,
    SubmitJobRequest,
    SubmitResultsRequest,
    SubmitResultsResponse,
    UserView,
)

__all__ = ["CoordinatorClient", "RemoteError", "Signer"]

TIMEOUT_S = 60.0
RETRIES_MAX = 5
BACKOFF_S_MAX = 8.0
ModelT = TypeVar("ModelT", bound=BaseModel)


class RemoteError(NexaPodError):
    """The coordinator refused a request; ``code`` is the coordinator's own code."""

    area = "remote"

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any]) -> None:
        super().__init__("refused", detail, status=status)
        self.code = code
        self.body = body


@dataclass(frozen=True)
class Signer:
    """A key and the signer name it signs as (``user:NAME`` or ``node:ID``)."""

    key: SigningKey
    key_id: str


class CoordinatorClient:
    """Typed calls to one coordinator. Use as a context manager, or call ``close``."""

    def __init__(
        self,
        base_url: str,
        signer: Signer | None = None,
        *,
        timeout_s: float = TIMEOUT_S,
        retries_max: int = RETRIES_MAX,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        assert retries_max >= 0
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self._retries_max = retries_max
        self._clock_s = clock_s
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # registry
    def register_user(self, request: RegisterUserRequest) -> UserView:
        return self._call("POST", "/v1/users", request, UserView, signed=False)

    def register_node(self, request: RegisterNodeRequest) -> NodeView:
        return self._call("POST", "/v1/nodes", request, NodeView, signed=False)

    def get_node(self, node_id: str) -> NodeView:
        return self._call("GET", f"/v1/nodes/{node_id}", None, NodeView, signed=False)

    # releases
    def publish_release(self, manifest: ReleaseManifestFile) -> tuple[ReleaseView, bool]:
        """Publish a signed manifest; returns (view, created): False when already published."""
        response = self._send("POST", "/v1/releases", manifest, signed=False)
        return ReleaseView.model_validate_json(response.content), response.status_code == 201

    def list_releases(self, limit: int = 50) -> ReleaseList:
        return self._call("GET", f"/v1/releases?limit={limit}", None, ReleaseList, signed=False)

    def get_release(self, tree_hash: str) -> ReleaseManifestFile:
        path = f"/v1/releases/{tree_hash}"
        return self._call("GET", path, None, ReleaseManifestFile, signed=False)

    # jobs
    def submit_job(self, request: SubmitJobRequest) -> JobView:
        return self._call("POST", "/v1/jobs", request, JobView, signed=True)

    def get_job(self, job_id: str) -> JobView:
        return self._call("GET", f"/v1/jobs/{job_id}", None, JobView, signed=False)

    def list_jobs(self, limit: int = 50) -> JobList:
        return self._call("GET", f"/v1/jobs?limit={limit}", None, JobList, signed=False)

    def get_neighbours(self, job_id: str, spectrum_index: int) -> SpectrumNeighbours:
        path = f"/v1/jobs/{job_id}/atlas/{spectrum_index}"
        return self._call("GET", path, None, SpectrumNeighbours, signed=False)

    def get_bytes(self, path: str) -> bytes:
        """Download bytes (an input block or a product)."""
        response = self._send("GET", path, None, signed=False)
        return response.content

    # leases and results
    def lease(self, units_max: int) -> LeaseResponse:
        return self._call(
            "POST", "/v1/leases", LeaseRequest(units_max=units_max), LeaseResponse, signed=True
        )

    def submit_results(self, items: list[ResultItem]) -> SubmitResultsResponse:
        request = SubmitResultsRequest(results=items)
        return self._call("POST", "/v1/results", request, SubmitResultsResponse, signed=True)

    def upload_result(
        self, document: ResultDocument, signature: str, data: bytes
    ) -> SubmitResultsResponse:
        """One signed result as raw bytes (no base64, no JSON around it)."""
        headers = {
            "content-type": "application/octet-stream",
            HEADER_RESULT_DOCUMENT: b64encode(document.model_dump_json().encode()),
            HEADER_RESULT_SIGNATURE: signature,
        }
        path = f"/v1/leases/{document.lease_id}/result"
        response = self._send_bytes("POST", path, data, headers, signed=True)
        return SubmitResultsResponse.model_validate_json(response.content)

    def submit_checkpoint(self, lease_id: str, upload: CheckpointUpload) -> None:
        self._send("POST", f"/v1/leases/{lease_id}/checkpoint", upload, signed=True)

    def report_failure(self, lease_id: str, code: str, detail: str) -> None:
        report = FailureReport(code=code, detail=detail[:4096])
        self._send("POST", f"/v1/leases/{lease_id}/failure", report, signed=True)

    # pools
    def set_pool_preferences(self, node_id: str, preferences: PoolPreferences) -> PoolMemberView:
        return self._call(
            "POST", f"/v1/nodes/{node_id}/pool", preferences, PoolMemberView, signed=True
        )

    # liveness challenges (cold pool)
    def open_challenges(self) -> ChallengeList:
        return self._call("GET", "/v1/challenges", None, ChallengeList, signed=True)

    def answer_challenge(self, challenge_id: str, answer: ChallengeAnswer) -> ChallengeOutcome:
        path = f"/v1/challenges/{challenge_id}"
        return self._call("POST", path, answer, ChallengeOutcome, signed=True)

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._send("GET", "/v1/health", None, signed=False).json()
        return result

    def _call(
        self,
        method: str,
        path: str,
        body: BaseModel | None,
        response_model: type[ModelT],
        *,
        signed: bool,
    ) -> ModelT:
        response = self._send(method, path, body, signed=signed)
        return response_model.model_validate_json(response.content)

    def _send(
        self, method: str, path: str, body: BaseModel | None, *, signed: bool
    ) -> httpx.Response:
        content = b"" if body is None else body.model_dump_json().encode()
        headers = {"content-type": "application/json"} if body is not None else {}
        return self._send_bytes(method, path, content, headers, signed=signed)

    def _send_bytes(
        self, method: str, path: str, content: bytes, fixed: dict[str, str], *, signed: bool
    ) -> httpx.Response:
        attempt = 0
        while True:
            headers = dict(fixed)
            if signed:
                headers.update(self._signature_headers(method, path, content))
            try:
                response = self._http.request(method, path, content=content, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self._retries_max:
                    raise NexaPodError(
                        "unreachable",
                        f"cannot reach the coordinator at {self.base_url} ({exc}); "
                        "check the URL and that `nexapod coordinator serve` is running",
                    ) from exc
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in (502, 503, 504) or attempt >= self._retries_max:
                    raise _remote_error(response)
            attempt += 1
            time.sleep(min(BACKOFF_S_MAX, 0.25 * 2**attempt))

    def _signature_headers(self, method: str, path: str, content: bytes) -> dict[str, str]:
        if self.signer is None:
            raise NexaPodError("unsigned", "this request must be signed: no key was given")
        signature = sign_request(
            self.signer.key,
            key_id=self.signer.key_id,
            method=method,
            path=path,
            body=content,
            timestamp_s=int(self._clock_s()),
        )
        return signature.headers()


def _remote_error(response: httpx.Response) -> RemoteError:
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("code", f"http_{response.status_code}"))
    detail = str(body.get("detail", response.text[:200] or response.reason_phrase))
    return RemoteError(response.status_code, code, detail, body)
