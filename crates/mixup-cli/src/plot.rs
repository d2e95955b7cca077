//! Training curves as a PNG: loss and accuracy against the epoch, side by side.
//!
//! Text is drawn with DejaVu Sans, which is compiled into the binary (`assets/DejaVuSans.ttf`,
//! licence in `assets/FONT-LICENSE.txt`), so plots look the same on every machine and need no
//! system fonts.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// DejaVu Sans, registered with plotters as `sans-serif`.
static FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// The font family name the plots use.
pub(crate) const FAMILY: &str = "sans-serif";

/// Width and height of the picture, in pixels.
const SIZE: (u32, u32) = (1000, 450);

/// One named curve: `(epoch, value)` points, drawn in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The legend entry (e.g. `train` or `valid`).
    pub name: String,
    /// The points, `(x, y)`. Points with a non-finite coordinate are left out.
    pub points: Vec<(f64, f64)>,
    /// Whiskers `(x, low, high)` drawn in the series' colour (e.g. ± one std over seeds);
    /// empty for none.
    pub whiskers: Vec<(f64, f64, f64)>,
}

impl Series {
    /// A series from a name and its points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            whiskers: Vec::new(),
        }
    }
}

/// Why a plot could not be drawn or written. Every variant names the picture's path.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The path does not end in `.png`, the only format written.
    #[error("{}: plots are written as PNG; the file name must end in .png", path.display())]
    NotPng {
        /// The path asked for.
        path: PathBuf,
    },
    /// The shipped font could not be loaded.
    #[error("{}: cannot load the plot font: {message}", path.display())]
    Font {
        /// The picture being drawn.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Drawing or writing the picture failed.
    #[error("{}: cannot draw the plot: {message}", path.display())]
    Draw {
        /// The picture being drawn.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Checks that `path` names a PNG and that the font loads, and returns the temporary file
/// to draw into (see [`png_temp`]).
pub(crate) fn start_png(path: &Path) -> Result<std::path::PathBuf, PlotError> {
    let is_png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(PlotError::NotPng {
            path: path.to_path_buf(),
        });
    }
    ensure_font().map_err(|message| PlotError::Font {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(png_temp(path))
}

/// The temporary file a plot of `path` is drawn into before [`commit_png`] (`.png` last: the
/// bitmap backend picks the format by extension).
fn png_temp(path: &Path) -> std::path::PathBuf {
    // Unique to this process and call (sweeps share folders); plotters wants a .png name.
    mixup_train::atomic::temp_path(path, "tmp.png")
}

/// Moves a finished plot into place the way every other file is written
/// ([`mixup_train::commit`]: synced, renamed, folder synced).
pub(crate) fn commit_png(tmp: &Path, path: &Path) -> Result<(), PlotError> {
    mixup_train::commit(tmp, path).map_err(|e| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Registers the shipped font with plotters, once per process.
pub(crate) fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the embedded DejaVu Sans is not a valid font".to_string())
        })
        .clone()
}

/// Draws `loss` (left) and `accuracy` (right) against the epoch into the PNG file `path`
/// (1000 x 450 pixels), with `title` above both panels, a legend in each panel, and axis labels.
///
/// Series may be empty or hold a single point; points with a non-finite coordinate are skipped.
/// Empty panels get a unit range. The parent folder of `path` must exist.
///
/// # Errors
///
/// [`PlotError::NotPng`] when `path` does not end in `.png`; [`PlotError::Draw`] when the
/// picture cannot be drawn or written; [`PlotError::Font`] if the embedded font is unusable.
pub fn plot_training(
    path: &Path,
    title: &str,
    loss: &[Series],
    accuracy: &[Series],
) -> Result<(), PlotError> {
    plot_two_panels(
        path,
        title,
        "epoch",
        ("Loss", "loss", loss),
        ("Accuracy", "accuracy", accuracy),
    )
}

/// One panel of [`plot_two_panels`]: caption, y-axis label and curves.
pub type Panel<'a> = (&'a str, &'a str, &'a [Series]);

/// Two side-by-side line charts sharing the x-axis label `x_desc`, into the PNG `path`; the
/// left panel's legend sits top right, the right panel's bottom right. See [`plot_training`].
///
/// # Errors
///
/// As [`plot_training`].
pub fn plot_two_panels(
    path: &Path,
    title: &str,
    x_desc: &str,
    left_panel: Panel<'_>,
    right_panel: Panel<'_>,
) -> Result<(), PlotError> {
    let tmp = start_png(path)?;
    let draw_error = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };

    let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let body = root
        .titled(title, (FAMILY, 24).into_font())
        .map_err(|e| draw_error(&e))?;
    let panels = body.split_evenly((1, 2));
    let (Some(left), Some(right)) = (panels.first(), panels.get(1)) else {
        return Err(draw_error(&"cannot split the picture into two panels"));
    };
    // Loss falls and accuracy rises: keep each legend in the corner the curves leave free.
    let (caption, y_desc, series) = left_panel;
    draw_panel(
        left,
        caption,
        x_desc,
        y_desc,
        SeriesLabelPosition::UpperRight,
        series,
    )
    .map_err(|e| draw_error(&e))?;
    let (caption, y_desc, series) = right_panel;
    draw_panel(
        right,
        caption,
        x_desc,
        y_desc,
        SeriesLabelPosition::LowerRight,
        series,
    )
    .map_err(|e| draw_error(&e))?;
    root.present().map_err(|e| draw_error(&e))?;
    drop(root);
    commit_png(&tmp, path)
}

/// The finite points of a series.
fn finite(series: &Series) -> Vec<(f64, f64)> {
    series
        .points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

// Font sizes are even on purpose: plotters' ab_glyph backend truncates half the size when it
// places each glyph, which lifts some glyphs (the decimal point) by a pixel at odd sizes.

/// A non-degenerate range covering `values`: exact when `pad` is 0, else widened by `pad`
/// times the span on each side; a single value gets a unit-wide (or 10%-wide) range around it.
fn axis_range(values: impl Iterator<Item = f64>, pad: f64) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    let span = hi - lo;
    if span <= f64::EPSILON * lo.abs().max(hi.abs()).max(1.0) {
        let half = (lo.abs() * 0.05).max(0.5);
        return (lo - half)..(hi + half);
    }
    (lo - pad * span)..(hi + pad * span)
}

type PanelResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// An epoch tick: whole numbers without decimals, others with at most two.
fn format_epoch(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{:.0}", x.round() + 0.0)
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    x_desc: &str,
    y_label: &str,
    legend: SeriesLabelPosition,
    series: &[Series],
) -> PanelResult {
    let points: Vec<Vec<(f64, f64)>> = series.iter().map(finite).collect();
    let whisker_ends = series
        .iter()
        .flat_map(|s| s.whiskers.iter().flat_map(|&(_, lo, hi)| [lo, hi]))
        .filter(|v| v.is_finite());
    let x_range = axis_range(points.iter().flatten().map(|p| p.0), 0.0);
    let y_range = axis_range(
        points.iter().flatten().map(|p| p.1).chain(whisker_ends),
        0.05,
    );
    let x_span = x_range.end - x_range.start;

    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_label)
        .x_label_formatter(&format_epoch)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;

    let mut labelled = false;
    for (i, (s, pts)) in series.iter().zip(points).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let style = color.stroke_width(2);
        let cap = x_span * 0.008;
        for &(x, lo, hi) in s
            .whiskers
            .iter()
            .filter(|w| w.0.is_finite() && w.1.is_finite() && w.2.is_finite())
        {
            chart.draw_series([
                PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1)),
                PathElement::new(vec![(x - cap, lo), (x + cap, lo)], color.stroke_width(1)),
                PathElement::new(vec![(x - cap, hi), (x + cap, hi)], color.stroke_width(1)),
            ])?;
        }
        // Markers make single points (and short runs) visible.
        let markers = pts.len() <= 60;
        let drawn = chart.draw_series(LineSeries::new(pts, style).point_size(if markers {
            3
        } else {
            0
        }))?;
        if !s.name.is_empty() {
            labelled = true;
            drawn
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(legend)
            .draw()?;
    }
    Ok(())
}

/// A confusion matrix as a heatmap PNG: rows are the true classes, columns the predicted
/// ones, each cell coloured by its share of its row (the recall of the diagonal) and labelled
/// with its count.
///
/// # Errors
///
/// [`PlotError`] naming the file: not a `.png`, or a drawing failure.
pub fn plot_confusion(
    path: &Path,
    title: &str,
    labels: &[String],
    confusion: &[Vec<usize>],
) -> Result<(), PlotError> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let tmp = start_png(path)?;
    let draw_error = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let n = labels.len().max(1);
    let cell = (560 / n as u32).clamp(14, 80);
    let side = cell * n as u32;
    // Wide enough for the title.
    let size = (
        (side + 220).max(title.chars().count() as u32 * 9 + 40),
        side + 190,
    );
    let root = BitMapBackend::new(&tmp, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let body = root
        .titled(title, (FAMILY, 18).into_font())
        .map_err(|e| draw_error(&e))?;
    let (x0, y0) = (170i32, 40i32);
    let font = (FAMILY, (cell as f64 * 0.35).clamp(9.0, 16.0)).into_font();
    let centered = TextStyle::from(font.clone()).pos(Pos::new(HPos::Center, VPos::Center));
    for (t, row) in confusion.iter().enumerate().take(n) {
        let total: usize = row.iter().sum();
        for (p, &count) in row.iter().enumerate().take(n) {
            let share = if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            };
            // White (0) to a deep blue (1).
            let shade = |full: f64| (255.0 - share * (255.0 - full)) as u8;
            let color = RGBColor(shade(30.0), shade(80.0), shade(160.0));
            let (cx, cy) = (x0 + (p as u32 * cell) as i32, y0 + (t as u32 * cell) as i32);
            body.draw(&Rectangle::new(
                [(cx, cy), (cx + cell as i32, cy + cell as i32)],
                color.filled(),
            ))
            .map_err(|e| draw_error(&e))?;
            let ink = if share > 0.55 { WHITE } else { BLACK };
            body.draw(&Text::new(
                count.to_string(),
                (cx + cell as i32 / 2, cy + cell as i32 / 2),
                centered.clone().color(&ink),
            ))
            .map_err(|e| draw_error(&e))?;
        }
    }
    let right = TextStyle::from(font.clone()).pos(Pos::new(HPos::Right, VPos::Center));
    let below = TextStyle::from(font).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, name) in labels.iter().enumerate() {
        let mid = (i as u32 * cell + cell / 2) as i32;
        body.draw(&Text::new(name.as_str(), (x0 - 6, y0 + mid), right.clone()))
            .map_err(|e| draw_error(&e))?;
        body.draw(&Text::new(
            name.as_str(),
            (x0 + mid, y0 + side as i32 + 6),
            below.clone().transform(FontTransform::Rotate90),
        ))
        .map_err(|e| draw_error(&e))?;
    }
    let axis = TextStyle::from((FAMILY, 15).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    body.draw(&Text::new(
        "predicted",
        (x0 + side as i32 / 2, y0 + side as i32 + 110),
        axis.clone(),
    ))
    .map_err(|e| draw_error(&e))?;
    body.draw(&Text::new(
        "true",
        (x0 - 150, y0 + side as i32 / 2),
        axis.transform(FontTransform::Rotate270),
    ))
    .map_err(|e| draw_error(&e))?;
    root.present().map_err(|e| draw_error(&e))?;
    drop(root);
    commit_png(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::tmp_dir;

    fn assert_png(path: &Path, min_bytes: usize) {
        let bytes = std::fs::read(path).expect("plot written");
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "not a PNG: {:?}",
            &bytes[..bytes.len().min(8)]
        );
        assert!(
            bytes.len() > min_bytes,
            "only {} bytes (expected > {min_bytes})",
            bytes.len()
        );
    }

    #[test]
    fn draws_loss_and_accuracy_curves() {
        let tmp = tmp_dir("plot-curves");
        let path = tmp.0.join("training.png");
        let epochs = 1..=20;
        let curve = |f: fn(f64) -> f64| epochs.clone().map(|e| (e as f64, f(e as f64))).collect();
        let loss = [
            Series::new("train", curve(|e| 1.8 / e.sqrt())),
            Series::new("valid", curve(|e| 1.9 / e.sqrt() + 0.01 * e)),
        ];
        let accuracy = [
            Series::new("train", curve(|e| 1.0 - 0.8 / e)),
            Series::new("valid", curve(|e| 0.95 - 0.8 / e)),
        ];
        plot_training(&path, "TextCNN on TREC, mixup α = 0.2", &loss, &accuracy).expect("plot");
        assert_png(&path, 5 * 1024);
    }

    #[test]
    fn empty_single_point_and_non_finite_series_do_not_panic() {
        let tmp = tmp_dir("plot-degenerate");
        let empty = tmp.0.join("empty.png");
        plot_training(&empty, "nothing yet", &[], &[]).expect("no series");
        assert_png(&empty, 1024);

        let blank = tmp.0.join("blank.png");
        plot_training(
            &blank,
            "empty series",
            &[Series::new("train", vec![])],
            &[Series::new("", vec![])],
        )
        .expect("empty series");
        assert_png(&blank, 1024);

        let single = tmp.0.join("single.png");
        let loss = [
            Series::new("train", vec![(1.0, 0.7)]),
            Series::new("diverged", vec![(1.0, f64::NAN), (2.0, f64::INFINITY)]),
        ];
        let accuracy = [Series::new("valid", vec![(1.0, 0.0)])];
        plot_training(&single, "one epoch", &loss, &accuracy).expect("single point");
        assert_png(&single, 1024);
    }

    #[test]
    fn refuses_other_formats_naming_the_path() {
        let tmp = tmp_dir("plot-format");
        let path = tmp.0.join("plot.svg");
        let err = plot_training(&path, "t", &[], &[]).expect_err("svg refused");
        assert!(matches!(err, PlotError::NotPng { .. }));
        assert!(err.to_string().contains("plot.svg"), "{err}");

        let missing = tmp.0.join("no/such/folder/plot.png");
        let err = plot_training(&missing, "t", &[], &[]).expect_err("no folder");
        assert!(matches!(err, PlotError::Draw { .. }), "{err:?}");
        assert!(err.to_string().contains("plot.png"), "{err}");
    }

    #[test]
    fn epoch_ticks() {
        assert_eq!(format_epoch(&2.0), "2");
        assert_eq!(format_epoch(&6.000_000_000_1), "6");
        assert_eq!(format_epoch(&0.5), "0.5");
        assert_eq!(format_epoch(&1.25), "1.25");
        assert_eq!(format_epoch(&-1.0), "-1");
        assert_eq!(format_epoch(&-0.0), "0");
    }

    #[test]
    fn axis_ranges_are_never_degenerate() {
        let r = axis_range(std::iter::empty(), 0.05);
        assert!(r.start < r.end);
        let r = axis_range([3.0].into_iter(), 0.05);
        assert!(r.start < 3.0 && 3.0 < r.end);
        let r = axis_range([0.0, 0.0].into_iter(), 0.0);
        assert!(r.start < 0.0 && 0.0 < r.end);
        let r = axis_range([1.0, 5.0].into_iter(), 0.0);
        assert_eq!(r, 1.0..5.0);
        let r = axis_range([1e9, 1e9].into_iter(), 0.05);
        assert!(r.start < 1e9 && 1e9 < r.end);
    }
}
