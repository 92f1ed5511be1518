//! The kernel command line: parsed once (ferrite_kcore::cmdline does the
//! parsing), problems reported, the log level applied.
use ferrite_kcore::cmdline::{self, LogLevel, Options};
use spin::Once;

static OPTIONS: Once<Options<'static>> = Once::new();

pub fn init(line: &'static str) -> &'static Options<'static> {
    let options = OPTIONS.call_once(|| cmdline::parse(line, |problem| log::warn!("cmdline: {problem}")));
    log::set_max_level(match options.log {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    });
    log::info!("cmdline: '{line}'");
    options
}

/// The options parsed at boot.
pub fn options() -> &'static Options<'static> {
    OPTIONS.get().expect("command line parsed at boot")
}

/// The options, if the line has been parsed yet (for the panic path, which
/// may run before).
pub fn parsed() -> Option<&'static Options<'static>> {
    OPTIONS.get()
}
