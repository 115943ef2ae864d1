# ssh-upgrade-guard developer entry points.

# ---- Debian package (packaging issue; see debian/README.source) -------------
# `make deb` builds target/debian/ssh-upgrade-guard_<version>_<arch>.deb.
# dpkg-buildpackage writes its results to the parent of the source tree, so the
# build runs in a copy of the tree (without target/ and .git/) at
# target/debian/ssh-upgrade-guard-<upstream version>/: nothing lands in the
# repository's parent directory, and developers' target/ is not touched.
# cargo is the one found in PATH (CI: rustup's /root/.cargo/bin), passed on by
# absolute path. Unless it is Debian's own /usr/bin/cargo, the build profile
# pkg.ssh-upgrade-guard.rustup tells dpkg-checkbuilddeps not to require
# Debian's cargo and rustc, which are too old for Cargo.lock.
# Tests are left to `make check` (DEB_BUILD_OPTIONS=nocheck); run them in the
# package build too with `make deb DEB_BUILD_OPTIONS=`.
# The build happens in $(DEB_OUT)/build/ (tree copy and dpkg-buildpackage's
# outputs); only a finished package is moved into $(DEB_OUT)/, so a test run
# reading the previous .deb never sees it missing. cargo's target directory
# ($(DEB_OUT)/cargo) outlives the copy: rebuilds compile only what changed.
# Runs in one tree (a developer's and the e2e harness's `make check`) are
# serialized with flock on $(DEB_OUT)/.lock, since they share the copy.
DEB_OUT := target/debian
DEB_BUILD_OPTIONS ?= nocheck

.PHONY: deb
deb:
	@set -eu; \
	cargo=$$(command -v "$${CARGO:-cargo}") || { \
		echo "make deb: cargo not found in PATH; install a Rust toolchain with rustup (see debian/README.source)" >&2; exit 1; }; \
	version=$$(dpkg-parsechangelog -S Version); \
	upstream=$${version#*:}; upstream=$${upstream%-*}; \
	deb=$(DEB_OUT)/ssh-upgrade-guard_$${version#*:}_$$(dpkg --print-architecture).deb; \
	case "$$cargo" in /usr/bin/cargo) profile= ;; *) profile=pkg.ssh-upgrade-guard.rustup ;; esac; \
	build=$(DEB_OUT)/build; src=$$build/ssh-upgrade-guard-$$upstream; \
	mkdir -p $(DEB_OUT); exec 9>$(DEB_OUT)/.lock; flock 9; \
	rm -rf "$$build"; mkdir -p "$$src" $(DEB_OUT)/cargo; \
	tar -cf - --exclude=./target --exclude=./.git . | tar -xf - -C "$$src"; \
	echo "make deb: building $$version with $$cargo$${profile:+, build profile $$profile}"; \
	(cd "$$src" && CARGO="$$cargo" CARGO_TARGET_DIR="$(CURDIR)/$(DEB_OUT)/cargo" \
		DEB_BUILD_OPTIONS="$(DEB_BUILD_OPTIONS)" \
		dpkg-buildpackage -us -uc -b $${profile:+--build-profiles=$$profile}); \
	built=$$build/$${deb##*/}; \
	test -f "$$built" || { echo "make deb: $$built was not built" >&2; exit 1; }; \
	for f in "$$build"/ssh-upgrade-guard_*; do mv -f "$$f" $(DEB_OUT)/; done; \
	echo "make deb: $$deb"

# ---- Source package (issue 13; debian/README.source) -------------------------
# `make dist` builds the Debian source package in target/dist/: the orig
# tarball with every crate of Cargo.lock vendored, .debian.tar.xz and .dsc,
# all regenerated from the tree and Cargo.lock (dist/make-dist).
# `make dist-check` (root; .ci/run runs it) builds that source package with
# Debian 13's own cargo and rustc in a cached clean trixie root with the
# network cut off, runs the tests and lintian there, and runs the seed
# incident on trixie with the .deb it built (dist/check).
.PHONY: dist dist-check
dist:
	dist/make-dist

dist-check:
	dist/check

# ---- End-to-end tests (tests/e2e/README.md) --------------------------------
# `check`, `e2e` and `demo` belong to the end-to-end harness.
# make e2e SCENARIOS="seed_incident classic"   run some scenarios by name
# make e2e GUARD=off                           the same scenarios without the guard
# make check E2E=skip                          everything but the booted-container tests
SCENARIOS ?=
export GUARD JOBS E2E_CACHE

.PHONY: check e2e demo shellcheck setup-host shape

# The house's shape (issue 17; tests/shape.rs, also run by cargo test): no
# import circle, no file over 500 lines before its tests, no function over
# 120 lines.
shape:
	cargo test --locked --test shape

# As root, installs the host packages that are missing; otherwise names them.
setup-host:
	@tests/e2e/setup-host

# Every shell script: the e2e harness and scenarios, the benchmark driver,
# CI, the source package's scripts, the maintainer scripts. Sourced files
# are followed (-x).
SHELL_SCRIPTS := tests/e2e/run tests/e2e/demo tests/e2e/setup-host \
	tests/e2e/lib/*.sh tests/e2e/lib/run-one \
	tests/e2e/fixture/make-noble-debs tests/e2e/fixture/make-sleeper-deb \
	tests/e2e/fixture/noble-postinst-restart tests/e2e/scenarios/*.sh \
	benches/run .ci/run dist/make-dist dist/check debian/*.postrm \
	dist/old-deb dist/piuparts tests/autopkgtest/run debian/ssh-upgrade-guard.bug-script \
	debian/tests/lib.sh debian/tests/smoke debian/tests/watchdog-inhibit \
	debian/tests/seed-incident debian/tests/remove-purge
shellcheck:
	shellcheck -x -P SCRIPTDIR --severity=warning $(SHELL_SCRIPTS)

check: setup-host
ifneq ($(E2E),skip)
	@tests/e2e/run --preflight
endif
	$(MAKE) shellcheck
	cargo fmt --check
	cargo test --locked
	cargo clippy --locked --all-targets -- -D warnings
	$(MAKE) deb
	lintian --fail-on error,warning target/debian/ssh-upgrade-guard_*.deb
ifeq ($(E2E),skip)
	@echo "make check: E2E=skip given: the end-to-end scenarios were NOT run"
else
	tests/e2e/run $(SCENARIOS)
endif

e2e:
	tests/e2e/run $(SCENARIOS)

demo: setup-host
	@tests/e2e/demo

# ---- Benchmark (issue 5; benches/run, BENCHMARKS.md) ------------------------
# `make bench` boots one e2e container, times the guard against ss, lsof and
# needrestart at 200, 2,000 and 10,000 extra processes, times repairs, and
# rewrites BENCHMARKS.md (root, systemd-nspawn; a few minutes).
.PHONY: bench
bench:
	@benches/run

# The simulated machine's property test (src/sim/) with more cases than a
# plain `cargo test` runs (10,000, always the same seed): `make sim
# CASES=200000`, on a fresh seed unless SEED=N names one (a failure says
# which, to run it again).
CASES ?= 100000
ifndef SEED
SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
.PHONY: sim
sim:
	@echo "sim: $(CASES) cases, PROPTEST_RNG_SEED=$(SEED)"
	PROPTEST_RNG_SEED=$(SEED) PROPTEST_CASES=$(CASES) cargo test --locked --lib sim:: || \
		{ echo "sim: failed with PROPTEST_RNG_SEED=$(SEED) CASES=$(CASES)"; exit 1; }

# ---- Debian QA (issue 19) ------------------------------------------------------
# `make autopkgtest` (root): the DEP-8 tests in debian/tests/ run by
# autopkgtest itself, null runner inside a booted e2e container, against the
# .deb from `make deb` (tests/autopkgtest/run says which restrictions that
# testbed provides); fails unless every test passes, none skipped.
# `make piuparts` (root): piuparts install, remove, purge and upgrade from
# 0.1.0 (dist/old-deb builds it from its last commit) on a clean Debian 12,
# ending "PASS: All tests." (dist/piuparts).
.PHONY: autopkgtest piuparts old-deb
autopkgtest:
	tests/autopkgtest/run

piuparts:
	dist/piuparts

old-deb:
	dist/old-deb

# `make man`: the reference man pages in man/ from docs/*.md (dist/md2man);
# `make man-check` (.ci/run) fails if a committed page is out of date, and
# runs man --warnings on every page.
.PHONY: man man-check
man:
	dist/md2man docs man

man-check:
	dist/md2man docs man --check
	@set -e; for f in man/*.[57]; do \
		w=$$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$$f" 2>&1 >/dev/null); \
		if [ -n "$$w" ]; then echo "man-check: $$f: $$w" >&2; exit 1; fi; \
	done; echo "man-check: man/ matches docs/, no warnings"
