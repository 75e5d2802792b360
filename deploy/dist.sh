#!/usr/bin/env bash
# Builds the release artifacts into dist/, from the source tree it is in:
#
#   dashcam-server-<version>-windows-x86_64.zip   the .exe, run_server.bat, verify.bat,
#                                                 QUICKSTART.txt, samples/, README.md, LICENSE
#   dashcam-server-<version>-linux-x86_64.tar.gz  a static (musl) binary, man pages,
#                                                 completions, the unit, samples/, README
#   dashcam-server_<version>_amd64.deb            /usr/bin, the systemd unit, the dashcam
#                                                 user, /var/lib/dashcam-server,
#                                                 /etc/default/dashcam-server, man, completions
#   SHA256SUMS                                    over the three
#
#   bash deploy/dist.sh
#
# A script, not a cargo xtask: it drives two or three toolchains (rustup's
# cargo with its Windows and musl standard libraries; Debian's cargo with
# -Zbuild-std where rustup cannot fetch them), MinGW, zip, tar and dpkg-deb,
# which a Rust program would only call in turn, and an xtask would add a
# crate to build before anything else. What it needs it installs (as root,
# with apt-get) or names.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$VERSION" ] || { echo "dist: no version in Cargo.toml"; exit 1; }
DIST=$ROOT/dist
STAGE=$ROOT/target/dist-stage
WIN=x86_64-pc-windows-gnu
MUSL=x86_64-unknown-linux-musl

say() { printf 'dist: %s\n' "$*"; }

# --- what it needs ----------------------------------------------------------
need_pkgs=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need_pkgs+=(gcc-mingw-w64-x86-64)
command -v musl-gcc >/dev/null || need_pkgs+=(musl-tools)
command -v zip >/dev/null || need_pkgs+=(zip)
command -v dpkg-deb >/dev/null || need_pkgs+=(dpkg)
command -v dpkg-shlibdeps >/dev/null || need_pkgs+=(dpkg-dev)
command -v gzip >/dev/null || need_pkgs+=(gzip)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "installing ${need_pkgs[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    else
        echo "dist needs: apt-get install ${need_pkgs[*]} (as root), then run it again"
        exit 1
    fi
fi
command -v cargo >/dev/null || { echo "dist needs Rust: https://rustup.rs"; exit 1; }

COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export DASHCAM_BUILD_COMMIT=$COMMIT

# --- the binaries -----------------------------------------------------------
# rustup's standard library for a target when it can be fetched; else
# Debian's Rust (rustc-web, cargo-web, rust-web-src) builds it (-Zbuild-std).
has_target() { command -v rustup >/dev/null && rustup target add "$1" >/dev/null 2>&1; }

build_std() { # target, extra env...
    local target=$1
    if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src >/dev/null
        else
            echo "dist: rustup cannot fetch $target's standard library; install Debian's Rust to build it: apt-get install rustc-web cargo-web rust-web-src"
            exit 1
        fi
    fi
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --release --locked --quiet \
        -Zbuild-std=std,panic_abort --target "$target" --target-dir target/cross
    echo "target/cross/$target/release"
}

say "version $VERSION, commit $COMMIT"
say "building for Linux (glibc: the .deb)"
cargo build --release --locked --quiet
GLIBC_BIN=target/release/dashcam-server

say "building for Windows ($WIN)"
if has_target $WIN; then
    cargo build --release --locked --quiet --target $WIN
    WIN_BIN=target/$WIN/release/dashcam-server.exe
else
    say "rustup has no $WIN standard library here: Debian's Rust with -Zbuild-std"
    WIN_BIN=$(build_std $WIN)/dashcam-server.exe
fi

say "building for any Linux ($MUSL, static)"
if has_target $MUSL; then
    CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --quiet --target $MUSL
    LINUX_BIN=target/$MUSL/release/dashcam-server
    LINKAGE="static (musl): it runs on any x86_64 Linux, whatever its C library."
else
    # Without rustup's musl library (its own libunwind and start files),
    # the glibc build, and the oldest glibc it runs on is said.
    LINUX_BIN=$GLIBC_BIN
    OLDEST=$(objdump -T "$GLIBC_BIN" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n 1)
    LINKAGE="linked against glibc: it needs ${OLDEST/GLIBC_/glibc }or later (rustup's musl library could not be fetched to build a static one)."
    say "no musl standard library: the tarball carries the glibc build ($OLDEST)"
fi

rm -rf "$STAGE" "$DIST"
mkdir -p "$STAGE" "$DIST"

# Man pages and completions, from the clap definitions of this very build.
"$GLIBC_BIN" generate-docs "$STAGE/docs" >/dev/null

# --- the Windows zip --------------------------------------------------------
W=dashcam-server-$VERSION-windows-x86_64
mkdir -p "$STAGE/$W"
cp "$WIN_BIN" "$STAGE/$W/dashcam-server.exe"
cp run_server.bat deploy/windows/verify.bat deploy/windows/QUICKSTART.txt "$STAGE/$W/"
cp -r samples "$STAGE/$W/samples"
# Notepad shows these with Windows line endings.
for f in README.md LICENSE; do sed 's/\r*$/\r/' "$f" > "$STAGE/$W/$f"; done
sed 's/\r*$/\r/' samples/README.md > "$STAGE/$W/samples/README.md"
(cd "$STAGE" && find "$W" -exec touch -d "@$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)" {} + \
    && zip -qrX "$DIST/$W.zip" "$W")

# --- the Linux tarball ------------------------------------------------------
L=dashcam-server-$VERSION-linux-x86_64
mkdir -p "$STAGE/$L"
install -m 755 "$LINUX_BIN" "$STAGE/$L/dashcam-server"
cp -r samples README.md LICENSE "$STAGE/$L/"
cp -r "$STAGE/docs/man" "$STAGE/docs/completions" "$STAGE/$L/"
cp deploy/dashcam-server.service "$STAGE/$L/"
sed "s|@LINKAGE@|$LINKAGE|" deploy/linux/README.txt > "$STAGE/$L/README.txt"
MTIME=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" \
    -C "$STAGE" -czf "$DIST/$L.tar.gz" "$L"

# --- the .deb ---------------------------------------------------------------
D=$STAGE/deb
install -d "$D/DEBIAN" "$D/usr/bin" "$D/usr/lib/systemd/system" "$D/etc/default" \
    "$D/usr/share/man/man1" "$D/usr/share/doc/dashcam-server" \
    "$D/usr/share/bash-completion/completions" "$D/usr/share/zsh/vendor-completions" \
    "$D/usr/share/fish/vendor_completions.d"
install -m 755 "$GLIBC_BIN" "$D/usr/bin/dashcam-server"
install -m 644 deploy/debian/dashcam-server.service "$D/usr/lib/systemd/system/"
install -m 644 deploy/debian/default "$D/etc/default/dashcam-server"
for m in "$STAGE"/docs/man/*.1; do gzip -9n < "$m" > "$D/usr/share/man/man1/$(basename "$m").gz"; done
install -m 644 "$STAGE/docs/completions/dashcam-server.bash" "$D/usr/share/bash-completion/completions/dashcam-server"
install -m 644 "$STAGE/docs/completions/_dashcam-server" "$D/usr/share/zsh/vendor-completions/"
install -m 644 "$STAGE/docs/completions/dashcam-server.fish" "$D/usr/share/fish/vendor_completions.d/"
install -m 644 deploy/debian/copyright "$D/usr/share/doc/dashcam-server/"
gzip -9n < README.md > "$D/usr/share/doc/dashcam-server/README.md.gz"
printf 'dashcam-server (%s) unstable; urgency=medium\n\n  * Release %s (commit %s).\n\n -- dashcam-server developers <dashcam-server@users.noreply.github.com>  %s\n' \
    "$VERSION" "$VERSION" "$COMMIT" "$(date -R -d "@$MTIME")" \
    | gzip -9n > "$D/usr/share/doc/dashcam-server/changelog.gz"
install -d "$D/usr/share/lintian/overrides"
grep -v '^#' deploy/debian/lintian-overrides > "$D/usr/share/lintian/overrides/dashcam-server"
for s in postinst prerm postrm; do install -m 755 "deploy/debian/$s" "$D/DEBIAN/"; done
echo /etc/default/dashcam-server > "$D/DEBIAN/conffiles"
# The libraries the binary links (libc6, libgcc-s1), as dpkg-shlibdeps finds them.
SHL=$(mktemp -d)
mkdir -p "$SHL/debian"
printf 'Source: dashcam-server\n\nPackage: dashcam-server\nArchitecture: amd64\n' > "$SHL/debian/control"
DEPENDS=$(cd "$SHL" && dpkg-shlibdeps -O "$D/usr/bin/dashcam-server" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$SHL"
[ -n "$DEPENDS" ] || { echo "dist: dpkg-shlibdeps found no dependencies"; exit 1; }
SIZE=$(du -sk --exclude=DEBIAN "$D" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@DEPENDS@/$DEPENDS/" deploy/debian/control > "$D/DEBIAN/control"
echo "Installed-Size: $SIZE" >> "$D/DEBIAN/control"
(cd "$D" && find usr etc -type f -print0 | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
find "$D" -type d -exec chmod 755 {} +
dpkg-deb --root-owner-group -Zxz --build "$D" "$DIST/dashcam-server_${VERSION}_amd64.deb" >/dev/null

# --- checksums --------------------------------------------------------------
(cd "$DIST" && sha256sum "$W.zip" "$L.tar.gz" "dashcam-server_${VERSION}_amd64.deb" > SHA256SUMS)

say "done in $(( $(date +%s) - START )) s:"
(cd "$DIST" && ls -l --block-size=K "$W.zip" "$L.tar.gz" "dashcam-server_${VERSION}_amd64.deb" SHA256SUMS \
    | awk '{print "  " $5 "  " $9}')
