#!/usr/bin/python3
"""Runs a command under a Docker/OCI seccomp profile, the way runc installs one, without a container engine.

Usage: seccomp-exec.py PROFILE.json COMMAND [ARGS...]

Each syscall group becomes libseccomp rules with the group's action and argument conditions (all of them
must hold, as in runc); names this architecture lacks are skipped, as runc skips them. The filter is loaded
(with no_new_privs) and then the command is exec'd, so the command and everything it starts run under it.
Only this machine's architecture is loaded. Needs Debian's python3-seccomp (for /usr/bin/python3).
"""
import json
import os
import sys

import seccomp

OPERATORS = {
    "SCMP_CMP_EQ": seccomp.EQ,
    "SCMP_CMP_NE": seccomp.NE,
    "SCMP_CMP_LT": seccomp.LT,
    "SCMP_CMP_LE": seccomp.LE,
    "SCMP_CMP_GT": seccomp.GT,
    "SCMP_CMP_GE": seccomp.GE,
    "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ,
}


def action(name, errno_ret):
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno_ret)
    raise SystemExit(f"seccomp-exec: action {name} is not supported here")


def argument(condition):
    op = OPERATORS[condition["op"]]
    if op is seccomp.MASKED_EQ:
        return seccomp.Arg(condition["index"], op, condition["value"], condition.get("valueTwo", 0))
    return seccomp.Arg(condition["index"], op, condition["value"])


def build(profile):
    default_errno = profile.get("defaultErrnoRet", 1)
    rules = seccomp.SyscallFilter(defaction=action(profile["defaultAction"], default_errno))
    for group in profile["syscalls"]:
        group_action = action(group["action"], group.get("errnoRet", default_errno))
        conditions = [argument(condition) for condition in group.get("args", [])]
        if len({condition["index"] for condition in group.get("args", [])}) < len(conditions):
            raise SystemExit("seccomp-exec: two conditions on one argument (runc makes them separate rules)")
        for name in group["names"]:
            if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) < 0:
                continue  # not a syscall of this architecture
            rules.add_rule_exactly(group_action, name, *conditions)
    return rules


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__.strip().splitlines()[2])
    with open(sys.argv[1], encoding="utf-8") as file:
        profile = json.load(file)
    build(profile).load()
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
