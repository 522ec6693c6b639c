#!/bin/sh
# Plays the image example/my-app of deploy/examples/app-with-sidecar.yaml on the test
# cluster: an app that asks its sidecar who leads, once a second, and prints the answer
# (tests/examples.rs reads it with `kubectl logs`).
trap 'exit 0' TERM INT
while :; do
	echo "$(date -u +%H:%M:%S) $(curl -s --max-time 2 "$PADDOCK_SIDECAR/v1/elections/my-app" || echo unreachable)"
	sleep 1 &
	wait $!
done
