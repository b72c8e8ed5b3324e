"""The control-plane tier: what the operator's integration tests rely on from a real API server."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request

import pytest

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.shoal.dev
spec:
  group: e2e.shoal.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.min <= self.max"
              message: "spec.min must not exceed spec.max"
            properties:
              min: {type: integer, minimum: 0}
              max: {type: integer}
"""


def test_api_server_is_ready(kubectl):
    """/readyz answers `ok` through the admin kubeconfig (TLS and client certificates work)."""
    assert kubectl.run("get", "--raw", "/readyz").stdout.strip() == "ok"


def test_admin_is_authorized_and_anonymous_is_not(kubectl):
    """RBAC is on: the admin may do anything, a caller without credentials may not list pods."""
    assert kubectl.run("auth", "can-i", "*", "*").stdout.strip() == "yes"
    config = json.loads(kubectl.run("config", "view", "--raw", "-o", "json").stdout)
    cluster = config["clusters"][0]["cluster"]
    context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{cluster['server']}/api/v1/pods", context=context, timeout=10)
    assert refused.value.code in (401, 403)


def test_crd_cel_rule_and_server_side_apply(kubectl):
    """A structural CRD with a CEL rule: valid objects apply server-side, invalid ones are refused with the rule's message."""
    kubectl.apply(CRD)
    kubectl.run("wait", "--for=condition=Established", "crd/widgets.e2e.shoal.dev", "--timeout=60s")
    try:
        good = "apiVersion: e2e.shoal.dev/v1\nkind: Widget\nmetadata: {name: good}\nspec: {min: 1, max: 3}\n"
        kubectl.apply(good, "--server-side", "--field-manager=e2e")
        managers = [m["manager"] for m in kubectl.get("widget", "good")["metadata"]["managedFields"]]
        assert "e2e" in managers

        bad = "apiVersion: e2e.shoal.dev/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {min: 5, max: 3}\n"
        refused = kubectl.run("apply", "-f", "-", "--server-side", stdin=bad, check=False)
        assert refused.returncode != 0
        assert "spec.min must not exceed spec.max" in refused.stderr
    finally:
        kubectl.run("delete", "crd", "widgets.e2e.shoal.dev", "--wait=false", check=False)


def test_owner_reference_garbage_collection(kubectl):
    """Deleting an owner removes its dependents (the controller manager's garbage collector runs)."""
    kubectl.run("create", "configmap", "owner")
    uid = kubectl.get("configmap", "owner")["metadata"]["uid"]
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
    }
    kubectl.apply(json.dumps(dependent))
    kubectl.run("delete", "configmap", "owner")
    kubectl.wait_until("the dependent ConfigMap to be collected", lambda: not kubectl.exists("configmap", "dependent"))


def test_service_account_tokens_are_issued(kubectl):
    """The API server signs service-account tokens (pods and the operator authenticate with them)."""
    token = kubectl.run("create", "token", "default").stdout.strip()
    assert token.count(".") == 2
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    status = json.loads(kubectl.run("create", "-f", "-", "-o", "json", stdin=json.dumps(review)).stdout)["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:serviceaccount:{kubectl.namespace}:default"
