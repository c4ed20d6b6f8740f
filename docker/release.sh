#!/usr/bin/env bash
# Builds ringproxy and ringload for Linux machines without Swift, and packs them with the systemd unit, an
# example configuration, the seccomp profile and the README's running, deploying and tuning sections:
#   dist/ringproxy-VERSION-linux-ARCH/  and  dist/ringproxy-VERSION-linux-ARCH.tar.gz
# Their debug information goes into bin/ringproxy.debug and bin/ringload.debug beside them, packed apart:
#   dist/ringproxy-VERSION-linux-ARCH-debug.tar.gz
# Swift's standard library (--static-swift-stdlib), liburing, c-ares, libstdc++ (for TOMLKit's toml++) and libgcc are
# linked in, so the binaries need only glibc (libc, libm and the loader); the build fails if anything else
# is left. It uses its own build folder (.build-static) and leaves `swift build` and `make test` alone.
set -euo pipefail
cd "$(dirname "$0")/.."

# The module maps link "uring" and "cares", which the linker resolves to the .so files when it can. SwiftPM
# puts the library folder of their pkg-config files first on the link line, so pkg-config files of our own
# naming a folder that holds only the static archives make -luring, -lcares (and -lstdc++) pick those instead.
scratch=.build-static
static=$PWD/$scratch/static-libs
mkdir -p "$static/pkgconfig"
ln -sf "$(pkg-config --variable=libdir liburing)/liburing.a" "$static/liburing.a"
libstdcxx=$(clang -print-file-name=libstdc++.a)
[ -f "$libstdcxx" ] || { echo "release: libstdc++.a not found (install libstdc++-12-dev)" >&2; exit 1; }
ln -sf "$libstdcxx" "$static/libstdc++.a"
cat >"$static/pkgconfig/liburing.pc" <<EOF
Name: liburing
Description: io_uring library, linked statically
Version: $(pkg-config --modversion liburing)
Libs: -L$static -luring
Cflags: -I$(pkg-config --variable=includedir liburing)
EOF
ln -sf "$(pkg-config --variable=libdir libcares)/libcares.a" "$static/libcares.a"
cat >"$static/pkgconfig/libcares.pc" <<EOF
Name: c-ares
Description: asynchronous DNS resolver, linked statically
Version: $(pkg-config --modversion libcares)
Libs: -L$static -lcares
Cflags: -I$(pkg-config --variable=includedir libcares)
EOF

PKG_CONFIG_PATH=$static/pkgconfig swift build -c release --scratch-path "$scratch" \
  --static-swift-stdlib -Xswiftc -Xclang-linker -Xswiftc -static-libgcc
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)

for program in ringproxy ringload; do
  extra=$(readelf -d "$bin/$program" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
    grep -v -E '^(libc|libm|libpthread|libdl|librt)\.so\.[0-9]+$|^ld-linux' || true)
  [ -z "$extra" ] || { echo "release: $program still needs ${extra//$'\n'/ }" >&2; exit 1; }
done

version=$(git describe --always --dirty 2>/dev/null || echo unknown)
name=ringproxy-$version-linux-$(uname -m)
out=dist/$name
rm -rf "$out" "$out.tar.gz" "$out-debug.tar.gz"
mkdir -p "$out/bin"
# The debug information moves to PROGRAM.debug; the binary keeps its symbol table (crash backtraces still
# name functions) and a .gnu_debuglink naming that file and its CRC, so gdb loads it when it lies beside the
# binary, in a .debug folder beside it, or under /usr/lib/debug with the binary's path.
for program in ringproxy ringload; do
  objcopy --only-keep-debug "$bin/$program" "$out/bin/$program.debug"
  chmod 0644 "$out/bin/$program.debug"
  objcopy --strip-debug --add-gnu-debuglink="$out/bin/$program.debug" "$bin/$program" "$out/bin/$program"
  readelf --string-dump=.gnu_debuglink "$out/bin/$program" | grep -q "$program\.debug" ||
    { echo "release: $program has no debug link" >&2; exit 1; }
done
"$out/bin/ringproxy" --help >/dev/null
cp docker/ringproxy.service docker/ringproxy.toml docker/seccomp-ringproxy.json "$out/"
# The README's title and introduction, and its running, deploying and tuning sections.
awk '/^## / { section = 1; keep = ($0 ~ /^## (Running it|Deploy|Tuning)$/) } !section || keep' README.md >"$out/README.md"
echo "$version" >"$out/VERSION"
# The release without the debug files; the debug tarball unpacks them into the same bin/ folder.
tar -C dist --exclude='*.debug' -czf "$out.tar.gz" "$name"
tar -C dist -czf "$out-debug.tar.gz" "$name/bin/ringproxy.debug" "$name/bin/ringload.debug"

echo "$out.tar.gz ($(du -h "$out.tar.gz" | cut -f1))"
echo "$out-debug.tar.gz ($(du -h "$out-debug.tar.gz" | cut -f1))"
echo "before stripping:"
ls -l "$bin/ringload" "$bin/ringproxy"
echo "after:"
ls -l "$out/bin"
ldd "$out/bin/ringproxy"
