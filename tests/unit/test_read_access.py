"""How long an App's right to read from the watch cache is trusted: a SubjectAccessReview's
answer is used for at most ACCESS_TTL seconds, per (verb, resource, namespace), and an answer
the server cannot give is no."""

from __future__ import annotations

from typing import Any

from syncer.apply.readaccess import ACCESS_TTL, AccessReview, service_account_groups
from syncer.errors import ClusterError
from syncer.kube import Resource

CONFIGMAPS = Resource(group="", version="v1", kind="ConfigMap", plural="configmaps", namespaced=True)
SAR = Resource(group="authorization.k8s.io", version="v1", kind="SubjectAccessReview",
               plural="subjectaccessreviews", namespaced=False)


class Reviews:
    """The API server's SubjectAccessReview endpoint: `allowed` says the answer."""

    def __init__(self) -> None:
        self.allowed = True
        self.asked: list[dict[str, Any]] = []

    def resource_for(self, api_version: str, kind: str) -> Resource:
        return SAR

    def create(self, resource: Resource, obj: dict[str, Any], *, subject: str) -> dict[str, Any]:
        self.asked.append(obj["spec"])
        if self.allowed is None:
            raise ClusterError(subject, "the server is unavailable", status=503)
        return {**obj, "status": {"allowed": self.allowed}}


def test_an_answer_is_kept_at_most_the_ttl_per_resource_and_namespace() -> None:
    now = [0.0]
    reviews = Reviews()
    access = AccessReview(reviews, user="system:serviceaccount:team-a:deployer", clock=lambda: now[0])  # type: ignore[arg-type]
    assert access.allowed(verb="list", resource=CONFIGMAPS, namespace="team-a")
    assert access.allowed(verb="list", resource=CONFIGMAPS, namespace="team-a")
    assert len(reviews.asked) == 1
    assert reviews.asked[0] == {
        "user": "system:serviceaccount:team-a:deployer",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"],
        "resourceAttributes": {"verb": "list", "group": "", "version": "v1", "resource": "configmaps",
                               "namespace": "team-a"}}
    access.allowed(verb="list", resource=CONFIGMAPS, namespace="team-b")
    assert len(reviews.asked) == 2

    reviews.allowed = False  # the right is revoked
    now[0] = ACCESS_TTL - 0.1
    assert access.allowed(verb="list", resource=CONFIGMAPS, namespace="team-a")
    now[0] = ACCESS_TTL
    assert not access.allowed(verb="list", resource=CONFIGMAPS, namespace="team-a")


def test_a_review_the_server_cannot_answer_is_no() -> None:
    reviews = Reviews()
    reviews.allowed = None  # type: ignore[assignment]
    access = AccessReview(reviews, user="system:serviceaccount:team-a:deployer")  # type: ignore[arg-type]
    assert not access.allowed(verb="get", resource=CONFIGMAPS, namespace="team-a")


def test_groups_of_a_user_that_is_not_a_service_account() -> None:
    assert service_account_groups("jane") == ["system:authenticated"]
