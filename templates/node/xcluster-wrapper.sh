#!/bin/sh
# xcluster on a lab node: the admin host's checkout, bind-mounted read-only at {{repo}}.
exec {{node}} {{repo}}/bin/run.js "$@"
