"""The pure parts of the cluster adapter: retry delays, error mapping, URL paths, rate limiting.

No API server is involved; the rate limiter test measures real time with bounds that only a
broken limiter (not a slow machine) can miss.
"""

from __future__ import annotations

import json
import time
from urllib.parse import unquote

import pytest

from syncer.errors import ClusterError, Conflict, Forbidden, Invalid, NotFound, Unavailable
from syncer.kube import Resource
from syncer.kube.errors import ServerAnswer, error_for_status, is_transient, server_answer
from syncer.kube.transport import RateLimiter, backoff_delay

# -- backoff ------------------------------------------------------------------------------------

SAMPLES = 300


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.6), (5, 6.4), (6, 10.0), (12, 10.0)],
)
def test_backoff_is_jittered_below_a_growing_capped_ceiling(attempt: int, ceiling: float) -> None:
    delays = [backoff_delay(attempt, base=0.2, cap=10.0, retry_after=None) for _ in range(SAMPLES)]
    assert all(0 <= d <= ceiling for d in delays)
    # Full jitter spreads delays over the whole range: with 300 samples the chance that none
    # lands in the top quarter, or none in the bottom quarter, is below 1e-37.
    assert max(delays) > 0.75 * ceiling
    assert min(delays) < 0.25 * ceiling


def test_backoff_grows_on_average() -> None:
    means = [
        sum(backoff_delay(attempt, base=0.2, cap=10.0, retry_after=None) for _ in range(SAMPLES)) / SAMPLES
        for attempt in range(5)
    ]
    assert means == sorted(means)
    assert means[4] > 4 * means[0]


@pytest.mark.parametrize(
    ("retry_after", "at_least", "at_most"),
    [
        pytest.param(3.0, 3.0, 3.0, id="longer-than-backoff-wins"),
        pytest.param(60.0, 10.0, 10.0, id="capped"),
        pytest.param(0.0, 0.0, 0.2, id="shorter-than-backoff-changes-nothing"),
    ],
)
def test_backoff_honours_retry_after(retry_after: float, at_least: float, at_most: float) -> None:
    for _ in range(50):
        delay = backoff_delay(0, base=0.2, cap=10.0, retry_after=retry_after)
        assert at_least <= delay <= at_most


# -- error mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, NotFound),
        (409, Conflict),
        (403, Forbidden),
        (422, Invalid),
        (400, Invalid),
        (429, Unavailable),
        (500, ClusterError),  # the server's own failure, not an unreachable server
        (502, Unavailable),
        (503, Unavailable),
        (504, Unavailable),
        (0, Unavailable),
        (401, ClusterError),
        (405, ClusterError),
        (501, ClusterError),
    ],
)
def test_error_for_status(status: int, kind: type[ClusterError]) -> None:
    error = error_for_status(status, subject="Deployment/shop/web", message="the server said no", reason="Because")
    assert type(error) is kind
    assert (error.status, error.subject, error.message, error.reason) == (
        status, "Deployment/shop/web", "the server said no", "Because",
    )
    assert str(error) == "Deployment/shop/web: the server said no"


@pytest.mark.parametrize(
    ("status", "retry_after", "transient"),
    [
        (0, None, True),
        (429, None, True),
        (502, None, True),
        (503, None, True),
        (504, None, True),
        (500, None, False),  # Kubernetes 1.20's panic on an APIService apply; a bug in a handler
        (500, 2.0, True),
        (400, None, False),
        (409, 1.0, False),
    ],
)
def test_only_transient_failures_are_retried(status: int, retry_after: float | None, transient: bool) -> None:
    assert is_transient(status, retry_after=retry_after) is transient


@pytest.mark.parametrize(
    ("body", "header", "answer"),
    [
        (b'{"kind":"Status","message":"boom","reason":"InternalError","code":500}', None,
         ServerAnswer("boom", "InternalError", None)),
        (b'{"kind":"Status","message":"slow","reason":"ServerTimeout","details":{"retryAfterSeconds":3}}', None,
         ServerAnswer("slow", "ServerTimeout", 3.0, {"retryAfterSeconds": 3})),
        (b"This request caused apiserver to panic. Look in the logs for details.\n", None,
         ServerAnswer("This request caused apiserver to panic. Look in the logs for details.")),
        (b"", "5", ServerAnswer("Service Unavailable", "", 5.0)),
    ],
)
def testserver_answer(body: bytes, header: str | None, answer: ServerAnswer) -> None:
    assert server_answer(body, fallback="Service Unavailable", retry_after_header=header) == answer


# -- paths --------------------------------------------------------------------------------------

CONFIGMAPS = Resource(group="", version="v1", kind="ConfigMap", plural="configmaps", namespaced=True)
DEPLOYMENTS = Resource(group="apps", version="v1", kind="Deployment", plural="deployments", namespaced=True)
NAMESPACES = Resource(group="", version="v1", kind="Namespace", plural="namespaces", namespaced=False)
CLUSTERROLES = Resource(group="rbac.authorization.k8s.io", version="v1", kind="ClusterRole",
                        plural="clusterroles", namespaced=False)


@pytest.mark.parametrize(
    ("resource", "namespace", "name", "want"),
    [
        (CONFIGMAPS, "shop", "settings", "/api/v1/namespaces/shop/configmaps/settings"),
        (CONFIGMAPS, "shop", None, "/api/v1/namespaces/shop/configmaps"),
        (CONFIGMAPS, None, None, "/api/v1/configmaps"),
        (DEPLOYMENTS, "shop", "web", "/apis/apps/v1/namespaces/shop/deployments/web"),
        (DEPLOYMENTS, None, None, "/apis/apps/v1/deployments"),
        (NAMESPACES, None, "shop", "/api/v1/namespaces/shop"),
        (NAMESPACES, "ignored", "shop", "/api/v1/namespaces/shop"),
        (CLUSTERROLES, None, "viewer", "/apis/rbac.authorization.k8s.io/v1/clusterroles/viewer"),
        (CLUSTERROLES, "shop", None, "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
        (CLUSTERROLES, None, "system:controller:job-controller",
         "/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Acontroller%3Ajob-controller"),
        (CONFIGMAPS, "shop", "a/b c?d#e", "/api/v1/namespaces/shop/configmaps/a%2Fb%20c%3Fd%23e"),
    ],
)
def test_resource_path(resource: Resource, namespace: str | None, name: str | None, want: str) -> None:
    path = resource.path(namespace=namespace, name=name)
    assert path == want
    if name:
        last = path.rsplit("/", 1)[1]
        assert unquote(last) == name, "the name survives as exactly one path segment"


@pytest.mark.parametrize(
    ("resource", "api_version", "group_kind"),
    [(CONFIGMAPS, "v1", "ConfigMap"), (DEPLOYMENTS, "apps/v1", "Deployment.apps"),
     (CLUSTERROLES, "rbac.authorization.k8s.io/v1", "ClusterRole.rbac.authorization.k8s.io")],
)
def test_resource_names(resource: Resource, api_version: str, group_kind: str) -> None:
    assert (resource.api_version, resource.group_kind) == (api_version, group_kind)


# -- rate limiting ------------------------------------------------------------------------------


def acquire_times(limiter: RateLimiter, count: int) -> list[float]:
    """Seconds since the start at which each of `count` acquisitions returned."""
    start = time.monotonic()
    times = []
    for _ in range(count):
        limiter.acquire()
        times.append(time.monotonic() - start)
    return times


def test_rate_limiter_lets_the_burst_through_then_paces_at_qps() -> None:
    qps, burst, extra = 50.0, 5, 10
    times = acquire_times(RateLimiter(qps=qps, burst=burst), burst + extra)
    # Lower bound, exact whatever the machine's load: the bucket starts with `burst` tokens
    # and refills at `qps`, so the last of burst+extra tokens exists no earlier than extra/qps.
    assert times[-1] >= extra / qps - 0.005
    # A loose upper bound: it does throttle, it does not stall.
    assert times[-1] < 3.0


def test_rate_limiter_burst_needs_no_waiting() -> None:
    """The first `burst` acquisitions return at once. With a bucket of one token they would
    need (burst-1)/qps = 80 ms; a slow machine may stall once, so one of three fresh limiters
    has to show it, which a bucket of one never can."""
    qps, burst = 50.0, 5
    bursts = [acquire_times(RateLimiter(qps=qps, burst=burst), burst)[-1] for _ in range(3)]
    assert min(bursts) < (burst - 1) / qps, bursts


def test_rate_limiter_throttles_within_a_window() -> None:
    qps, burst, window = 50.0, 5, 0.1
    limiter = RateLimiter(qps=qps, burst=burst)
    start = time.monotonic()
    acquired = 0
    while time.monotonic() - start < window:
        limiter.acquire()
        acquired += 1
    elapsed = time.monotonic() - start
    # At most the burst plus what refilled meanwhile; without a limit this would be in the
    # thousands. (No lower bound: a machine that stalls may well manage fewer.)
    assert 1 <= acquired <= burst + qps * elapsed


def test_rate_limiter_without_qps_never_waits() -> None:
    limiter = RateLimiter(qps=0, burst=1)
    start = time.monotonic()
    for _ in range(10_000):
        limiter.acquire()
    assert time.monotonic() - start < 1.0


# -- Status bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "want"),
    [
        pytest.param(
            json.dumps({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": 'deployments.apps "web" is forbidden: User "ci" cannot patch resource',
                "reason": "Forbidden", "code": 403,
            }).encode(),
            ('deployments.apps "web" is forbidden: User "ci" cannot patch resource', "Forbidden"),
            id="status-body",
        ),
        pytest.param(json.dumps({"kind": "Status", "code": 500}).encode(), ("Internal Server Error", ""),
                     id="status-without-message"),
        pytest.param(json.dumps({"kind": "Status", "message": "", "reason": "Timeout"}).encode(),
                     ("Internal Server Error", "Timeout"), id="empty-message"),
        pytest.param(b"<html><body>502 Bad Gateway</body></html>\n",
                     ("<html><body>502 Bad Gateway</body></html>", ""), id="proxy-html"),
        pytest.param(b"", ("Internal Server Error", ""), id="empty-body"),
        pytest.param(b"  \n", ("Internal Server Error", ""), id="blank-body"),
        pytest.param(b"[1, 2]", ("Internal Server Error", ""), id="json-not-an-object"),
        pytest.param(b"\xff\xfe not utf-8", ("\ufffd\ufffd not utf-8", ""), id="undecodable-bytes"),
    ],
)
def test_status_message(body: bytes, want: tuple[str, str]) -> None:
    answer = server_answer(body, fallback="Internal Server Error", retry_after_header=None)
    assert (answer.message, answer.reason) == want
