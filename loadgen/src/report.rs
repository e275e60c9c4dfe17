//! The benchmark's report: reads the JSON lines `scripts/bench` wrote (one
//! result per line, each naming its `broker`) and writes `bench.md` — every
//! scenario side by side, mqchat against Mosquitto — and SVG charts:
//! deliveries/s per pub/sub scenario, latency against offered load, and
//! CPU per delivery against the number of live topics.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde_json::Value;

const BROKERS: [&str; 2] = ["mosquitto", "mqchat"];

pub fn write(input: &Path, out_dir: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let rows: Vec<Value> =
        text.lines().filter(|line| !line.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>().context("a result line is not JSON")?;
    std::fs::create_dir_all(out_dir)?;
    let mut markdown = String::new();
    pubsub_table(&rows, &mut markdown);
    sustained_table(&rows, &mut markdown);
    latency_table(&rows, &mut markdown);
    chat_table(&rows, &mut markdown);
    connections_table(&rows, &mut markdown);
    scale_table(&rows, &mut markdown);
    std::fs::write(out_dir.join("bench.md"), markdown)?;
    pubsub_chart(&rows, &out_dir.join("pubsub.svg"))?;
    latency_chart(&rows, &out_dir.join("latency.svg"))?;
    scale_chart(&rows, &out_dir.join("scale.svg"))?;
    Ok(())
}

fn of<'r>(rows: &'r [Value], scenario: &str) -> impl Iterator<Item = &'r Value> {
    let scenario = scenario.to_owned();
    rows.iter().filter(move |row| row["scenario"] == scenario.as_str())
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// `1234567.8` → `1,234,568`.
fn grouped(value: f64) -> String {
    if !value.is_finite() {
        return "—".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

fn millis(latency: &Value, quantile: &str) -> String {
    latency[quantile].as_f64().map_or("—".into(), |micros| format!("{:.1}", micros / 1000.0))
}

fn pubsub_label(row: &Value) -> String {
    format!("QoS {} {}→{}", row["qos"], row["publishers"], row["subscribers"])
}

/// Pub/sub results flat out (no `load_fraction`), keyed by scenario then
/// broker: every run of it (`scripts/bench` repeats each, alternating the
/// brokers), sorted by deliveries/s.
fn pubsub_runs(rows: &[Value]) -> BTreeMap<(u64, u64, u64), BTreeMap<String, Vec<&Value>>> {
    let mut pairs: BTreeMap<(u64, u64, u64), BTreeMap<String, Vec<&Value>>> = BTreeMap::new();
    for row in of(rows, "pubsub").filter(|row| row["load_fraction"].is_null()) {
        let key = (row["qos"].as_u64().unwrap_or(0), row["publishers"].as_u64().unwrap_or(0), row["subscribers"].as_u64().unwrap_or(0));
        pairs.entry(key).or_default().entry(row["broker"].as_str().unwrap_or("?").to_owned()).or_default().push(row);
    }
    for runs in pairs.values_mut().flat_map(|brokers| brokers.values_mut()) {
        runs.sort_by(|a, b| number(&a["delivered_per_s"]).total_cmp(&number(&b["delivered_per_s"])));
    }
    pairs
}

/// The median run (the lower middle one of an even count), so that its
/// latencies come from the same run as its rate.
fn median<'r>(runs: &[&'r Value]) -> Option<&'r Value> {
    runs.get(runs.len().saturating_sub(1) / 2).copied()
}

/// Each scenario's median run per broker.
fn pubsub_pairs(rows: &[Value]) -> BTreeMap<(u64, u64, u64), BTreeMap<String, &Value>> {
    pubsub_runs(rows)
        .into_iter()
        .map(|(key, brokers)| (key, brokers.into_iter().filter_map(|(broker, runs)| Some((broker, median(&runs)?))).collect()))
        .collect()
}

/// `median` alone for one run, `median (min–max)` for several.
fn spread(runs: &[&Value]) -> String {
    let rate = |row: &Value| grouped(number(&row["delivered_per_s"]));
    match (runs.first(), median(runs), runs.last()) {
        (Some(low), Some(middle), Some(high)) if runs.len() > 1 => format!("{} ({}–{})", rate(middle), rate(low), rate(high)),
        (_, Some(middle), _) => rate(middle),
        _ => "—".into(),
    }
}

fn pubsub_table(rows: &[Value], out: &mut String) {
    let runs = pubsub_runs(rows);
    if runs.is_empty() {
        return;
    }
    out.push_str("### Pub/sub through the gateway (100-byte payloads, flat out)\n\n");
    out.push_str("Median of the runs (lowest–highest); ratio and latencies of the median runs.\n\n");
    out.push_str("| scenario | runs | Mosquitto deliveries/s | mqchat deliveries/s | mqchat / Mosquitto | p50 / p99 ms (Mosquitto) | p50 / p99 ms (mqchat) |\n|---|---|---|---|---|---|---|\n");
    for brokers in runs.values() {
        let (Some(mosquitto_runs), Some(mqchat_runs)) = (brokers.get("mosquitto"), brokers.get("mqchat")) else { continue };
        let (Some(mosquitto), Some(mqchat)) = (median(mosquitto_runs), median(mqchat_runs)) else { continue };
        let (m, q) = (number(&mosquitto["delivered_per_s"]), number(&mqchat["delivered_per_s"]));
        let latency = |row: &Value| format!("{} / {}", millis(&row["latency_us"], "p50"), millis(&row["latency_us"], "p99"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2}× | {} | {} |",
            pubsub_label(mqchat),
            mqchat_runs.len().min(mosquitto_runs.len()),
            spread(mosquitto_runs),
            spread(mqchat_runs),
            q / m,
            latency(mosquitto),
            latency(mqchat)
        );
    }
    out.push('\n');
}

fn sustained_table(rows: &[Value], out: &mut String) {
    let mut pairs: BTreeMap<u64, BTreeMap<String, &Value>> = BTreeMap::new();
    for row in of(rows, "sustained") {
        pairs.entry(row["subscribers"].as_u64().unwrap_or(0)).or_default().insert(row["broker"].as_str().unwrap_or("?").to_owned(), row);
    }
    if pairs.is_empty() {
        return;
    }
    out.push_str("### QoS 0 paced: the highest offered rate with ≥ 99% delivered\n\n");
    out.push_str("| scenario | Mosquitto deliveries/s | mqchat deliveries/s | mqchat / Mosquitto |\n|---|---|---|---|\n");
    for pair in pairs.values() {
        let (Some(mosquitto), Some(mqchat)) = (pair.get("mosquitto"), pair.get("mqchat")) else { continue };
        let cell = |row: &Value| {
            let ceiling = if row["at_sweep_ceiling"] == true { "≥ " } else { "" };
            format!("{ceiling}{}", grouped(number(&row["delivered_per_s"])))
        };
        let ratio = number(&mqchat["delivered_per_s"]) / number(&mosquitto["delivered_per_s"]);
        let _ = writeln!(out, "| {} | {} | {} | {ratio:.2}× |", pubsub_label(mqchat), cell(mosquitto), cell(mqchat));
    }
    out.push('\n');
}

fn latency_table(rows: &[Value], out: &mut String) {
    let paced: Vec<&Value> = of(rows, "pubsub").filter(|row| !row["load_fraction"].is_null()).collect();
    if paced.is_empty() {
        return;
    }
    out.push_str("### Latency under load (publish → delivered)\n\n");
    out.push_str("| broker | scenario | share of its peak | offered msgs/s | delivered/s | p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|---|---|---|\n");
    for row in paced {
        let latency = &row["latency_us"];
        let _ = writeln!(
            out,
            "| {} | {} | {:.0}% | {} | {} | {} | {} | {} |",
            row["broker"].as_str().unwrap_or("?"),
            pubsub_label(row),
            number(&row["load_fraction"]) * 100.0,
            grouped(number(&row["offered_rate"]) * number(&row["publishers"])),
            grouped(number(&row["delivered_per_s"])),
            millis(latency, "p50"),
            millis(latency, "p99"),
            millis(latency, "p999"),
        );
    }
    out.push('\n');
}

fn chat_table(rows: &[Value], out: &mut String) {
    let chats: Vec<&Value> = of(rows, "chat").collect();
    if chats.is_empty() {
        return;
    }
    // Mosquitto's median raw QoS 0 1→10 run, as the pub/sub table shows it.
    let reference = pubsub_pairs(rows).get(&(0, 1, 10)).and_then(|brokers| brokers.get("mosquitto")).map(|row| number(&row["delivered_per_s"]));
    out.push_str("### Chat path (commands → stored → delivered to every member)\n\n");
    out.push_str("| database | stored msgs/s | deliveries/s | send → reply p50 / p99 ms | deliveries / Mosquitto's raw QoS 0 1→10 |\n|---|---|---|---|---|\n");
    for row in chats {
        let delivered = number(&row["delivered_per_s"]);
        let ratio = reference.map_or("—".into(), |raw| format!("{:.2}×", delivered / raw));
        let latency = &row["send_to_reply_us"];
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} / {} | {ratio} |",
            row["database"].as_str().unwrap_or("?"),
            grouped(number(&row["stored_per_s"])),
            grouped(delivered),
            millis(latency, "p50"),
            millis(latency, "p99"),
        );
    }
    out.push('\n');
}

fn connections_table(rows: &[Value], out: &mut String) {
    let connections: Vec<&Value> = of(rows, "connections").collect();
    if connections.is_empty() {
        return;
    }
    out.push_str("### Idle authenticated connections and a reconnect storm\n\n");
    out.push_str("| broker | connected / asked | connects/s | server memory per connection | storm: back and answered / clients | storm: all back after (median) |\n|---|---|---|---|---|---|\n");
    for row in connections {
        let storm = &row["storm"];
        let _ = writeln!(
            out,
            "| {} | {} / {} | {} | {:.1} KiB | {} / {} | {:.2} s ({:.2} s) |",
            row["broker"].as_str().unwrap_or("?"),
            row["connected"],
            row["requested"],
            grouped(number(&row["connects_per_s"])),
            number(&row["bytes_per_connection"]) / 1024.0,
            storm["back"],
            storm["clients"],
            number(&storm["seconds_until_all_back"]),
            number(&storm["median_seconds_back"]),
        );
    }
    out.push('\n');
}

fn color(broker: &str) -> RGBColor {
    if broker == "mqchat" {
        RGBColor(0x1f, 0x77, 0xb4)
    } else {
        RGBColor(0xff, 0x7f, 0x0e)
    }
}

fn pubsub_chart(rows: &[Value], path: &Path) -> anyhow::Result<()> {
    let pairs = pubsub_pairs(rows);
    if pairs.is_empty() {
        return Ok(());
    }
    let labels: Vec<String> = pairs.values().filter_map(|pair| pair.values().next().map(|row| pubsub_label(row))).collect();
    let top = pairs.values().flat_map(|pair| pair.values()).map(|row| number(&row["delivered_per_s"])).fold(0.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Deliveries per second, flat out (higher is better)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..labels.len() as f64, 0.0..top.max(1.0))?;
    let names = labels.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(labels.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let slot = *x - x.floor();
            if (slot - 0.5).abs() < 0.01 { names.get(x.floor() as usize).cloned().unwrap_or_default() } else { String::new() }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (offset, broker) in BROKERS.iter().enumerate() {
        let bars = pairs.values().enumerate().filter_map(|(slot, pair)| {
            let value = number(&pair.get(*broker)?["delivered_per_s"]);
            let left = slot as f64 + 0.1 + 0.4 * offset as f64;
            Some(Rectangle::new([(left, 0.0), (left + 0.4, value)], color(broker).filled()))
        });
        chart.draw_series(bars)?.label(*broker).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color(broker).filled()));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}

fn latency_chart(rows: &[Value], path: &Path) -> anyhow::Result<()> {
    let paced: Vec<&Value> = of(rows, "pubsub").filter(|row| !row["load_fraction"].is_null()).collect();
    if paced.is_empty() {
        return Ok(());
    }
    let top = paced.iter().map(|row| number(&row["latency_us"]["p999"]) / 1000.0).fold(0.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Publish → delivered latency against load ({})", pubsub_label(paced[0])), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..100.0, 0.0..top.max(1.0))?;
    chart.configure_mesh().x_desc("share of the broker's own peak (%)").y_desc("ms").draw()?;
    for broker in BROKERS {
        for (quantile, name, width) in [("p50", "p50", 1), ("p99", "p99", 2), ("p999", "p99.9", 3)] {
            let points: Vec<(f64, f64)> = paced
                .iter()
                .filter(|row| row["broker"] == broker)
                .map(|row| (number(&row["load_fraction"]) * 100.0, number(&row["latency_us"][quantile]) / 1000.0))
                .collect();
            let style = ShapeStyle { color: color(broker).to_rgba(), filled: false, stroke_width: width };
            chart
                .draw_series(LineSeries::new(points, style))?
                .label(format!("{broker} {name}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}

fn scale_table(rows: &[Value], out: &mut String) {
    let scale: Vec<&Value> = of(rows, "scale").collect();
    if scale.is_empty() {
        return;
    }
    out.push_str("### Scale curve (topics with a live subscriber, publishes round-robin over all)\n\n");
    out.push_str("| broker | live topics | delivered/s | server CPU µs per delivery | vs. the fewest topics | server memory per live topic | first publish to every topic delivered after |\n|---|---|---|---|---|---|---|\n");
    for row in &scale {
        let broker = row["broker"].as_str().unwrap_or("?");
        let smallest = scale
            .iter()
            .filter(|other| other["broker"] == broker)
            .min_by_key(|other| other["topics"].as_u64().unwrap_or(u64::MAX))
            .map(|other| number(&other["cpu_us_per_delivery"]));
        let cost = number(&row["cpu_us_per_delivery"]);
        let _ = writeln!(
            out,
            "| {broker} | {} | {} | {cost:.1} | {:.2}× | {:.0} B | {:.2} s ({} of {} arrived) |",
            row["topics"],
            grouped(number(&row["delivered_per_s"])),
            smallest.map_or(f64::NAN, |base| cost / base),
            number(&row["bytes_per_live_topic"]),
            number(&row["first_round_seconds"]),
            row["first_round_delivered"],
            row["topics"],
        );
    }
    out.push('\n');
}

fn scale_chart(rows: &[Value], path: &Path) -> anyhow::Result<()> {
    let scale: Vec<&Value> = of(rows, "scale").collect();
    if scale.is_empty() {
        return Ok(());
    }
    let most = scale.iter().map(|row| number(&row["topics"])).fold(1.0, f64::max);
    let top = scale.iter().map(|row| number(&row["cpu_us_per_delivery"])).fold(0.0, f64::max) * 1.2;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Server CPU per delivered message as live topics grow (lower is better)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((100.0..most * 2.0).log_scale(), 0.0..top.max(1.0))?;
    chart.configure_mesh().x_desc("live topics (conversations with a subscriber)").y_desc("µs CPU per delivery").draw()?;
    for broker in BROKERS {
        let mut points: Vec<(f64, f64)> =
            scale.iter().filter(|row| row["broker"] == broker).map(|row| (number(&row["topics"]), number(&row["cpu_us_per_delivery"]))).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let style = ShapeStyle { color: color(broker).to_rgba(), filled: true, stroke_width: 2 };
        chart
            .draw_series(LineSeries::new(points.clone(), style).point_size(4))?
            .label(broker)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(broker: &str, rate: f64, p50: u64) -> Value {
        json!({"scenario": "pubsub", "broker": broker, "qos": 1, "publishers": 1, "subscribers": 1,
               "delivered_per_s": rate, "latency_us": {"p50": p50, "p99": p50 * 2}})
    }

    #[test]
    fn repeated_runs_show_the_median_run_with_its_range() {
        let rows = vec![
            run("mosquitto", 50_000.0, 20_000),
            run("mqchat", 90_000.0, 9_000),
            run("mosquitto", 103_000.0, 300_000),
            run("mqchat", 110_000.0, 11_000),
            run("mosquitto", 46_000.0, 24_000),
            run("mqchat", 100_000.0, 10_000),
        ];
        let mut table = String::new();
        pubsub_table(&rows, &mut table);
        let line = table.lines().find(|line| line.starts_with("| QoS 1 1→1")).expect("a QoS 1 1→1 row");
        assert_eq!(
            line,
            "| QoS 1 1→1 | 3 | 50,000 (46,000–103,000) | 100,000 (90,000–110,000) | 2.00× | 20.0 / 40.0 | 10.0 / 20.0 |"
        );
    }

    #[test]
    fn a_single_run_is_shown_without_a_range() {
        let rows = vec![run("mosquitto", 50_000.0, 20_000), run("mqchat", 90_000.0, 9_000)];
        let mut table = String::new();
        pubsub_table(&rows, &mut table);
        assert!(table.contains("| QoS 1 1→1 | 1 | 50,000 | 90,000 | 1.80× |"), "{table}");
    }
}
