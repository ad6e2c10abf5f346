"""Turns Kiln's rendered Kubernetes manifests into what `podman kube play` runs.

    play.py RENDERED.yaml OUT.yaml --image IMAGE --script FILE [--set NAME.KEY=VALUE]...
            [--driver-arg ARG]...

podman plays Pods, Deployments, ConfigMaps and Secrets. The driver's Job becomes a Pod with
the Job's pod template (podman 4.3 has no Jobs; the pod is named like the Job, so executors
find it by the name the Service gives it in a cluster); the Service is dropped (podman's
network resolves pod names); probes are dropped (podman runs them through systemd timers).
The image is set, the `kiln-job` script replaced, and Secret and ConfigMap keys set with
`--set NAME.KEY=VALUE`. Prints the names of the Secrets written beside OUT (see below).
"""

import argparse
import base64
import json
import sys

import yaml


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("rendered")
    p.add_argument("out")
    p.add_argument("--image", required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--driver-arg", action="append", default=[])
    a = p.parse_args()
    with open(a.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(a.script) as f:
        script = f.read()
    sets = {}
    for s in a.set:
        key, value = s.split("=", 1)
        name, field = key.split(".", 1)
        sets.setdefault(name, {})[field] = value

    out = []
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "Service":
            continue
        if kind == "ConfigMap":
            if name == "kiln-job":
                d["data"] = {"job.sql": script}
            d["data"].update(sets.get(name, {}))
        if kind == "Secret":
            # podman 4.3 stores a played Secret as YAML but reads it back as a JSON map of
            # base64 values; so each Secret is written in that form to OUT.NAME.secret.json
            # for `podman secret create NAME FILE`, and left out of the played file.
            values = {**d.get("stringData", {}), **sets.get(name, {})}
            data = dict(d.get("data", {}))
            data.update({k: base64.b64encode(v.encode()).decode() for k, v in values.items()})
            with open(f"{a.out}.{name}.secret.json", "w") as f:
                json.dump(data, f)
            print(name)
            continue
        if kind == "Job":
            template = d["spec"]["template"]
            d = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": template["metadata"].get("labels", {})},
                "spec": template["spec"],
            }
            d["spec"]["containers"][0]["args"].extend(a.driver_arg)
        if kind in ("Job", "Deployment"):
            spec = d["spec"] if kind == "Job" else d["spec"]["template"]["spec"]
            for c in spec["containers"]:
                c["image"] = a.image
                c["imagePullPolicy"] = "Never"
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    c.pop(probe, None)
        out.append(d)
    with open(a.out, "w") as f:
        yaml.safe_dump_all(out, f, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
