//! The report of a nightly-sized synthetic run renders in headless Chromium (Debian's
//! `chromium`): the screenshot is not blank. With `KCHAOS_UPDATE_SCREENSHOT=1` it is also copied
//! to `reports/screenshot.png` for the README.

#![allow(clippy::unwrap_used)]

mod support;

use checker::{AnomalyKind, LostExpectation};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "chromium";
/// Headless Chromium normally takes a few seconds; this only stops a hung one.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(120);

fn chromium_path() -> PathBuf {
    let found = std::env::var_os("PATH").map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(CHROMIUM))
            .find(|path| path.is_file())
    });
    match found.flatten() {
        Some(path) => path,
        None => panic!(
            "`{CHROMIUM}` is not installed: run `bash .ci/setup` (it installs Debian's chromium)"
        ),
    }
}

/// Screenshots `page` into `png` at 1280 x `height`, failing on a non-zero exit.
fn screenshot(page: &Path, png: &Path, height: u32) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium_path())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size=1280,{height}"))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(png.with_extension("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(png.with_extension("stderr.txt")).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}):\n{stderr}");
    assert!(png.is_file(), "chromium wrote no screenshot:\n{stderr}");
}

/// Distinct RGB colours of a PNG, and the share of pixels that are white.
fn colours(png: &Path) -> (usize, f64, (u32, u32)) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels = &buffer[..info.buffer_size()];
    let mut distinct = HashSet::new();
    let mut white = 0usize;
    let mut total = 0usize;
    for pixel in pixels.chunks_exact(channels) {
        let rgb = (pixel[0], pixel[1], pixel[2]);
        if rgb == (255, 255, 255) {
            white += 1;
        }
        distinct.insert(rgb);
        total += 1;
    }
    (
        distinct.len(),
        white as f64 / total.max(1) as f64,
        (info.width, info.height),
    )
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let store = tempfile::tempdir().unwrap();
    let dir = support::run_dir(store.path(), "acks-all-kill-leader", "20261125T150000.000Z");
    support::synthetic(&dir, 100, 40);
    let results = support::check(&dir, LostExpectation::None);
    assert!(
        results.count(AnomalyKind::Lost) > 0,
        "the synthetic run loses sends"
    );
    let report = reports::write_report(&dir).unwrap();
    reports::write_junit(&dir).unwrap();
    let size = std::fs::metadata(&report).unwrap().len();
    assert!(size < 2_000_000, "report.html is {size} bytes");

    let png = dir.join("screenshot.png");
    screenshot(&report, &png, 2000);
    let (distinct, white_share, (width, height)) = colours(&png);
    assert_eq!((width, height), (1280, 2000));
    assert!(
        distinct > 200,
        "only {distinct} distinct colours: blank page?"
    );
    assert!(
        white_share < 0.97,
        "{:.1}% white: blank page?",
        white_share * 100.0
    );
    if std::env::var_os("KCHAOS_UPDATE_SCREENSHOT").is_some() {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshot.png");
        std::fs::copy(&png, target).unwrap();
        // A full-length screenshot and the run itself, to look at by hand.
        let sample = std::env::temp_dir().join("kchaos-report-sample");
        let _ = std::fs::remove_dir_all(&sample);
        std::fs::create_dir_all(&sample).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), sample.join(entry.file_name())).unwrap();
        }
        screenshot(&sample.join("report.html"), &sample.join("full.png"), 4200);
    }
}

#[test]
fn a_big_history_is_downsampled_and_stays_small() {
    let store = tempfile::tempdir().unwrap();
    let dir = support::run_dir(store.path(), "random-faults", "20261125T150000.000Z");
    support::synthetic(&dir, 2_000, 40);
    let started = Instant::now();
    let report = reports::write_report(&dir).unwrap();
    let lines = std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .count();
    println!("report of {lines} history lines in {:?}", started.elapsed());
    let size = std::fs::metadata(&report).unwrap().len();
    assert!(size < 2_000_000, "report.html is {size} bytes");
    let html = std::fs::read_to_string(report).unwrap();
    assert!(
        html.contains("Showing every failed and indeterminate send and"),
        "downsampled"
    );
}
