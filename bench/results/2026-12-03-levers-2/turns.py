import sys, re, subprocess, collections, json
# Groups the proxy's completions by the io_uring_enter that posted them (events up to and including an exit
# belong to the turn that exit starts) and counts, per turn, recv completions per (slot, direction).
data = sys.argv[1]  # a perf.data from turns.sh or turns-3p.sh
lines = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout.splitlines()
turns = []; cur = []
for l in lines:
    if "sys_exit_io_uring_enter" in l:
        turns.append(cur); cur = []
    elif "io_uring_complete" in l:
        m = re.search(r"user_data 0x([0-9a-f]+), result (-?\d+), cflags 0x([0-9a-f]+)", l)
        ud, res, cf = int(m.group(1), 16), int(m.group(2)), int(m.group(3), 16)
        cur.append((ud, res, cf))
turns.append(cur)
recv_total = 0; recv_extra = 0; turns_with_dup = 0; dup_hist = collections.Counter(); cqes = 0; nonempty = 0
for t in turns:
    cqes += len(t)
    if t: nonempty += 1
    per = collections.Counter()
    for ud, res, cf in t:
        if ud >> 56 == 4 and res > 0 and cf & 1:   # recv kind, data, a provided buffer
            per[ud & ~(((1 << 23) - 1) << 32)] += 1  # slot + direction (generation masked)
    recv_total += sum(per.values())
    extra = sum(n - 1 for n in per.values() if n > 1)
    recv_extra += extra
    if extra: turns_with_dup += 1
    for n in per.values(): dup_hist[n] += 1
print(json.dumps(dict(enters=len(turns), turns_with_cqes=nonempty, cqes=cqes, recv_cqes=recv_total,
    recv_cqes_beyond_first_per_direction_per_turn=recv_extra,
    share_of_recv_cqes_a_bundle_could_fold=round(recv_extra / max(recv_total, 1), 4),
    turns_with_2plus_same_direction=turns_with_dup,
    recv_cqes_per_direction_per_turn_hist=dict(sorted(dup_hist.items()))), indent=1))
sends = collections.Counter(); kinds = collections.Counter()
for t in turns:
    sends[sum(1 for ud, res, cf in t if ud >> 56 == 5)] += 1
    for ud, res, cf in t: kinds[ud >> 56] += 1
print("send CQEs per turn (turns):", dict(sorted(sends.items())[:12]), "CQEs by kind:", dict(kinds))
