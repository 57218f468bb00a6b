//! One loaded extension library: `dlopen` with `RTLD_NOW | RTLD_LOCAL`, the version handshake,
//! and its entry points looked up once as plain function pointers.
//!
//! Called by [`super::Extensions`] the first time a request needs a path. Choices:
//! - `RTLD_NOW`: an undefined symbol fails the load, with the dynamic linker's message, instead
//!   of killing a request later; `RTLD_LOCAL`: one library's symbols never satisfy another's.
//! - A library that passed the handshake is never closed (its handle is leaked on purpose): its
//!   function pointers are used for the process's life, and closing a Rust cdylib whose threads
//!   registered thread-local destructors is a use-after-unmap. A refused one is closed at once.
//! - Only absolute paths: a bare name would make `dlopen` search `LD_LIBRARY_PATH` and the
//!   system directories; the config makes every path absolute before the host sees it.
//! - `unsafe` here is what loading foreign code is: running its initialisers and calling its
//!   handshake; each block says what it relies on.

use std::path::{Path, PathBuf};

use bulkhead_extension::abi::{self, symbol, AbiFn, EndFn, HandlerFn, LogFn};
use libloading::os::unix::{Library as Dl, RTLD_LOCAL, RTLD_NOW};

/// Why a library was not loaded. Each message names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("extension {path}: not an absolute path; name the library by its full path", path = .path.display())]
    NotAbsolute { path: PathBuf },
    #[error("extension {path}: cannot be loaded: {reason}", path = .path.display())]
    Open { path: PathBuf, reason: String },
    #[error(
        "extension {path}: is not a Bulkhead extension: it exports no `bulkhead_extension_abi` (see include/bulkhead_extension.h)",
        path = .path.display()
    )]
    NotAnExtension { path: PathBuf },
    #[error(
        "extension {path}: refused to load: its bulkhead_extension_abi returned 0 (its own initialisation failed; see its messages above)",
        path = .path.display()
    )]
    RefusedByLibrary { path: PathBuf },
    #[error(
        "extension {path}: built for extension ABI {library}, but this host speaks ABI {host} (it loads the same major version with a minor no newer than its own); rebuild the library against include/bulkhead_extension.h {host}",
        path = .path.display()
    )]
    WrongAbi { path: PathBuf, library: String, host: String },
    #[error(
        "extension {path}: exports no `bulkhead_extension_handle`, so it cannot be a route's `library` (a library of filters only belongs in `filters`)",
        path = .path.display()
    )]
    NoHandler { path: PathBuf },
}

/// A library that passed the handshake, with the entry points it exports.
#[derive(Debug)]
pub struct Library {
    path: PathBuf,
    abi: u32,
    pub(super) handle: Option<HandlerFn>,
    pub(super) request_headers: Option<HandlerFn>,
    pub(super) authenticate: Option<HandlerFn>,
    pub(super) response_headers: Option<HandlerFn>,
    pub(super) log: Option<LogFn>,
    pub(super) end_of_request: Option<EndFn>,
}

impl Library {
    /// Loads `path`, runs its handshake and looks up its entry points.
    pub fn load(path: &Path) -> Result<Library, LoadError> {
        if !path.is_absolute() {
            return Err(LoadError::NotAbsolute { path: path.to_path_buf() });
        }
        let fail = |reason: libloading::Error| LoadError::Open { path: path.to_path_buf(), reason: reason.to_string() };
        // SAFETY: loading a library runs its initialisers; that an operator's extension does
        // nothing harmful there is the trust every ISAPI-style host gives its extensions, and a
        // crash is confined to this worker process.
        let dl = unsafe { Dl::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(fail)?;
        // SAFETY: the symbol's type is the one the ABI declares for this name.
        let handshake: AbiFn = match unsafe { dl.get::<AbiFn>(symbol::ABI) } {
            Ok(f) => *f,
            Err(_) => return Err(LoadError::NotAnExtension { path: path.to_path_buf() }),
        };
        // SAFETY: the ABI's handshake, called once, on one thread, before any other entry point.
        let version = unsafe { handshake(abi::ABI_VERSION) };
        if version == 0 {
            return Err(LoadError::RefusedByLibrary { path: path.to_path_buf() });
        }
        let (major, minor) = (version >> 16, version & 0xffff);
        if major != u32::from(abi::ABI_MAJOR) || minor > u32::from(abi::ABI_MINOR) {
            return Err(LoadError::WrongAbi {
                path: path.to_path_buf(),
                library: abi::version_text(version),
                host: abi::version_text(abi::ABI_VERSION),
            });
        }
        // SAFETY (each lookup): the symbol, when present, has the type the ABI declares for it;
        // the pointers stay valid because the library is never closed (below).
        let library = unsafe {
            Library {
                path: path.to_path_buf(),
                abi: version,
                handle: dl.get::<HandlerFn>(symbol::HANDLE).ok().map(|s| *s),
                request_headers: dl.get::<HandlerFn>(symbol::REQUEST_HEADERS).ok().map(|s| *s),
                authenticate: dl.get::<HandlerFn>(symbol::AUTHENTICATE).ok().map(|s| *s),
                response_headers: dl.get::<HandlerFn>(symbol::RESPONSE_HEADERS).ok().map(|s| *s),
                log: dl.get::<LogFn>(symbol::LOG).ok().map(|s| *s),
                end_of_request: dl.get::<EndFn>(symbol::END_OF_REQUEST).ok().map(|s| *s),
            }
        };
        // Never closed: see the module's doc.
        let _ = dl.into_raw();
        Ok(library)
    }

    /// The path it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ABI version it was built for, `"1.0"`.
    pub fn abi(&self) -> String {
        abi::version_text(self.abi)
    }

    /// Whether it has a request handler (a route's `library` must).
    pub fn has_handler(&self) -> bool {
        self.handle.is_some()
    }

    /// The filter entry points it exports, by their hook names.
    pub fn filters(&self) -> Vec<&'static str> {
        [
            ("request_headers", self.request_headers.is_some()),
            ("authenticate", self.authenticate.is_some()),
            ("response_headers", self.response_headers.is_some()),
            ("log", self.log.is_some()),
            ("end_of_request", self.end_of_request.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }
}
