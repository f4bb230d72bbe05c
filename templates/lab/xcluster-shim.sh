#!/bin/sh
# xcluster lab: run this checkout's CLI from inside the admin namespace.
exec "{{node}}" "{{bin}}" "$@"
