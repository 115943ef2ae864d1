//! The `sshd -T` cache of `status` and `check`: they only report, so they
//! may reuse the last answer while nothing it depends on changed
//! ([`cache_key`]). Everything that acts on sshd runs it afresh.
//!
//! The key stats every file sshd reads, Include targets too, and a hung
//! NFS or FUSE mount there would hang the caller: the walk runs on a
//! thread of its own and is given up after [`CACHE_KEY_TIMEOUT`], with a
//! warning; nothing is cached then, and sshd -T (bounded by its own
//! timeout) runs as if there were no cache.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::sshd::{read_small_regular, UNIT_ENV_FILE};
use crate::model::ConfigCheck;
use crate::sshd::SshdListen;
use crate::sshd_config::{IncludeTarget, Refs, SshdOpts};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CACHE_FILE: &str = "sshd-T.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    key: String,
    check: ConfigCheck,
    listen: Option<SshdListen>,
}

/// Most files the cache key follows before giving up on caching.
const MAX_KEY_FILES: usize = 256;
/// sshd_config files larger than this are not parsed for Include lines (the
/// cache is then not used).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// How long the walk and stats of the cache key may take. A few
/// milliseconds on a healthy host; past this a mount hangs.
pub const CACHE_KEY_TIMEOUT: Duration = Duration::from_secs(3);

/// The cache key: identity (device, inode, size, mtime, ctime) of every
/// file `sshd -T` reads with these options: the binary, ssh.service's
/// EnvironmentFile, the configuration file (`-f` or sshd_config), every file
/// its Include directives reach (recursively, globs expanded as sshd does,
/// relative paths under /etc/ssh, the globbed directories themselves so a
/// new match changes the key), and the host keys (named by HostKey or -h,
/// the defaults, and every ssh_host_* in /etc/ssh). None when that set
/// cannot be covered (a wildcard in a directory name, too many files or
/// levels, an unreadable configuration) or not within
/// [`CACHE_KEY_TIMEOUT`]: then sshd -T runs every time.
pub fn cache_key(roots: &super::Roots, opts: &SshdOpts) -> Option<String> {
    cache_key_within(roots, opts, CACHE_KEY_TIMEOUT)
}

/// [`cache_key`] with its bound.
fn cache_key_within(roots: &super::Roots, opts: &SshdOpts, limit: Duration) -> Option<String> {
    let (roots, opts) = (roots.clone(), opts.clone());
    bounded(limit, move || walk(&roots, &opts))
}

/// Runs the walk `f` on its own thread for at most `limit`; an abandoned
/// walk (stuck in the kernel on a hung mount) ends with the process.
fn bounded(limit: Duration, f: impl FnOnce() -> Option<String> + Send + 'static) -> Option<String> {
    use crate::deadline::{run_within, Outcome};
    let _doing = crate::deadline::doing("reading sshd's configuration files for the sshd -T cache");
    match run_within(limit, f) {
        Outcome::Done(key) => key,
        Outcome::TimedOut => {
            log::warn!(
                "sshd -T cache: sshd's configuration files could not be read within {} s (a hung mount?); not cached this time",
                limit.as_secs()
            );
            None
        }
        Outcome::Panicked => None,
    }
}

/// The walk of [`cache_key`], unbounded: every path, then their stats.
fn walk(roots: &super::Roots, opts: &SshdOpts) -> Option<String> {
    let mut w = Walk {
        roots,
        paths: vec![roots.sshd.clone(), roots.under(Path::new(UNIT_ENV_FILE))],
        queue: Vec::new(),
        host_keys: opts
            .host_keys
            .iter()
            .chain(&opts.host_certs)
            .cloned()
            .collect(),
    };
    // -o options are configuration lines of their own, read before the file.
    let config = opts
        .config_file
        .clone()
        .unwrap_or_else(|| "/etc/ssh/sshd_config".into());
    w.queue.push((config, 0));
    w.follow(refs_of_options(opts), 0)?;
    w.read_queue()?;
    let mut paths = w.paths;
    paths.extend(host_key_paths(roots, w.host_keys));
    Some(stat_key(opts, paths))
}

/// The Include and HostKey lines among `-o` options, and Debian's drop-in
/// directory, whether or not an Include names it (one sshd -T too many when
/// a file there is not read costs nothing).
fn refs_of_options(opts: &SshdOpts) -> Refs {
    use crate::sshd_config::{include_path, keyword_line};
    let mut refs = Refs::default();
    for o in &opts.options {
        match keyword_line(o) {
            Some((kw, args)) if kw == "include" => {
                refs.includes.extend(args.iter().map(|a| include_path(a)))
            }
            Some((kw, args)) if kw == "hostkey" => refs.host_keys.extend(args.into_iter().take(1)),
            _ => {}
        }
    }
    refs.includes
        .push("/etc/ssh/sshd_config.d/*.conf".to_string());
    refs
}

/// What the walk has found so far.
struct Walk<'a> {
    roots: &'a super::Roots,
    /// Every path whose identity goes into the key.
    paths: Vec<PathBuf>,
    /// (file, depth) still to read.
    queue: Vec<(String, usize)>,
    /// HostKey files named so far.
    host_keys: Vec<String>,
}

impl Walk<'_> {
    /// Queues what `refs` names at `depth`; None when it cannot be covered.
    fn follow(&mut self, refs: Refs, depth: usize) -> Option<()> {
        use crate::sshd_config::{glob_match, include_target};
        self.host_keys.extend(refs.host_keys);
        for inc in refs.includes {
            match include_target(&inc) {
                IncludeTarget::File(f) => {
                    if let Some(parent) = Path::new(&f).parent() {
                        self.paths.push(self.roots.under(parent));
                    }
                    self.queue.push((f, depth + 1));
                }
                IncludeTarget::Glob { dir, pattern } => {
                    let real = self.roots.under(Path::new(&dir));
                    self.paths.push(real.clone());
                    let mut names: Vec<String> = match std::fs::read_dir(&real) {
                        Ok(rd) => rd
                            .flatten()
                            .filter_map(|e| e.file_name().into_string().ok())
                            .filter(|n| glob_match(&pattern, n))
                            .collect(),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                        Err(e) => {
                            log::debug!("sshd -T cache: {}: {e}", real.display());
                            return None;
                        }
                    };
                    names.sort();
                    self.queue
                        .extend(names.into_iter().map(|n| (format!("{dir}/{n}"), depth + 1)));
                }
                IncludeTarget::Uncoverable(why) => {
                    log::debug!("sshd -T cache not used: {why}");
                    return None;
                }
            }
        }
        Some(())
    }

    /// Reads every queued file and follows what it names.
    fn read_queue(&mut self) -> Option<()> {
        use crate::sshd_config::{parse_refs, MAX_INCLUDE_DEPTH};
        let mut seen = 0;
        while let Some((file, depth)) = self.queue.pop() {
            seen += 1;
            if depth > MAX_INCLUDE_DEPTH || seen > MAX_KEY_FILES {
                log::debug!("sshd -T cache not used: more than {MAX_KEY_FILES} files or {MAX_INCLUDE_DEPTH} levels of Include");
                return None;
            }
            let real = self.roots.under(Path::new(&file));
            self.paths.push(real.clone());
            match read_small_regular(&real, MAX_CONFIG_BYTES) {
                Ok(Some(text)) => self.follow(parse_refs(&text), depth)?,
                Ok(None) => {}
                Err(e) => {
                    log::debug!("sshd -T cache not used: {}: {e}", real.display());
                    return None;
                }
            }
        }
        Some(())
    }
}

/// The host keys (those named, else the defaults; each with its .pub),
/// /etc/ssh itself and every ssh_host_* in it.
fn host_key_paths(roots: &super::Roots, mut host_keys: Vec<String>) -> Vec<PathBuf> {
    use crate::sshd_config::DEFAULT_HOST_KEYS;
    if host_keys.is_empty() {
        host_keys.extend(DEFAULT_HOST_KEYS.iter().map(|k| k.to_string()));
    }
    let mut paths = Vec::new();
    for k in &host_keys {
        paths.push(roots.under(Path::new(k)));
        paths.push(roots.under(Path::new(&format!("{k}.pub"))));
    }
    let etc = roots.under(Path::new("/etc/ssh"));
    let mut in_etc: Vec<PathBuf> = std::fs::read_dir(&etc)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    in_etc.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ssh_host_"))
    });
    in_etc.sort();
    paths.push(etc);
    paths.extend(in_etc);
    paths
}

/// The key's text: the options, then each path's identity once.
fn stat_key(opts: &SshdOpts, paths: Vec<PathBuf>) -> String {
    use std::os::unix::fs::MetadataExt;
    let mut key = format!("options {:?}\n", opts.all);
    let mut done: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    for p in paths {
        if !done.insert(p.clone()) {
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) => key.push_str(&format!(
                "{} {} {} {} {}.{} {}.{}\n",
                p.display(),
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            )),
            Err(_) => key.push_str(&format!("{} -\n", p.display())),
        }
    }
    key
}

pub fn load_cached(
    dir: &super::fsx::RunDir,
    key: &str,
) -> Option<(ConfigCheck, Option<SshdListen>)> {
    let super::fsx::Entry::File(text) = dir.read(CACHE_FILE, 256 * 1024) else {
        return None;
    };
    let c: Cached = serde_json::from_str(&text).ok()?;
    (c.key == key && c.check.valid.is_some()).then_some((c.check, c.listen))
}

pub fn store_cached(
    dir: &super::fsx::RunDir,
    key: String,
    check: &ConfigCheck,
    listen: &Option<SshdListen>,
) {
    if check.valid.is_none() {
        return;
    }
    let c = Cached {
        key,
        check: check.clone(),
        listen: listen.clone(),
    };
    if let Ok(text) = serde_json::to_string(&c) {
        if let Err(e) = dir.write_atomic(CACHE_FILE, &text, 0o644) {
            log::debug!("{e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_covers_the_files_of_a_fake_root() {
        let d = tempfile::tempdir().unwrap();
        let roots = super::super::Roots::for_test(d.path());
        let key = cache_key(&roots, &SshdOpts::default()).unwrap();
        assert!(key.contains("sshd_config"), "{key}");
    }

    /// A walk that hangs (a stat on a hung NFS or FUSE mount) costs the
    /// bound, then nothing is cached.
    #[test]
    fn a_hung_cache_key_walk_is_given_up_at_its_bound_and_nothing_is_cached() {
        let t = std::time::Instant::now();
        let key = bounded(Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(30));
            Some("never".into())
        });
        assert_eq!(key, None);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
