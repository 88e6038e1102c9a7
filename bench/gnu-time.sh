#!/usr/bin/env bash
# Installs GNU time (/usr/bin/time) with apt when it is missing, idempotently: the benchmarks
# read a command's wall time and peak memory from it, even when the command is killed.
# Sourced by bench/scale.sh and bench/fits.sh.
if [ ! -x /usr/bin/time ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time
fi
