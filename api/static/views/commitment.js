// #/commitment/{agency}/{id} — a commitment: its terms, the filter form, the figures the city publishes (each with what
// it rests on and the commitment's rank among all commitments), its other figures and ratings, its on-time trend
// (chart and table) and its versions.

import { drawTrend } from "../chart.js";
import { h, newId } from "../dom.js";
import {
  formatDuration,
  formatInt,
  formatRate,
  localDayStart,
  localIsoDate,
  localName,
  t,
  UTC_OFFSET_SECONDS,
} from "../i18n.js";
import { figureLabel, figureNotes, PUBLISHED, publishedCell, rankOf } from "../figures.js";
import { cached, MAX_LIST, navigate } from "../state.js";
import { rankingsHash } from "./rankings.js";
import {
  breadcrumbs,
  code,
  deadlineText,
  enc,
  facts,
  filterForm,
  filterParams,
  filterQuery,
  message,
  otherLang,
  feedLink,
  pageHeading,
  proofLink,
  rangeParams,
  rangeText,
  ratingCell,
  row,
  selectionText,
  table,
  timeEl,
  unansweredCell,
} from "../ui.js";

/** The trend query: the page's date range, or by default the last 30 days or 26 weeks (weeks from Monday), in
 * local days, so that each bucket is a local day or week rather than a UTC one. */
function trendRange(params, bucket) {
  const range = rangeParams(params);
  if (range.from !== undefined) return { ...range, bucket };
  const today = localDayStart(localIsoDate(Date.now() / 1000));
  const end = range.to ?? today + 86400;
  const weekday = (new Date((end - 86400 + UTC_OFFSET_SECONDS) * 1000).getUTCDay() + 6) % 7; // Monday 0
  const from = bucket === "day" ? end - 30 * 86400 : end - 86400 - weekday * 86400 - 25 * 7 * 86400;
  return { from, to: range.to, bucket };
}

export async function commitmentView({ args: [agencyId, commitmentId], params }) {
  const bucket = params.get("bucket") === "week" ? "week" : "day";
  const path = `commitments/${enc(agencyId)}/${enc(commitmentId)}`;
  const [agencies, history, trend, scorecards] = await Promise.all([
    cached("agencies", { limit: MAX_LIST }),
    cached(path, {}),
    cached(`${path}/trend`, trendRange(params, bucket)),
    cached("scorecards", { by: "commitment", ...filterParams(params) }),
  ]);
  const agency = agencies.items.find((a) => a.agency_id === agencyId) || { agency_id: agencyId };
  const versions = history.versions;
  const commitment = versions.find((v) => v.version === history.current_version) || versions[versions.length - 1];
  const card = scorecards.items.find((c) => c.agency_id === agencyId && c.commitment_id === commitmentId);
  const metrics = card ? card.metrics : {};
  const target = commitment.target_rate;
  const name = localName(commitment, commitmentId);
  const agencyName = localName(agency, agencyId);
  const other = otherLang();
  const query = filterQuery(params);
  const buckets = trend.buckets;

  const unit = t(`unit.${bucket}`);
  const rates = buckets.map((b) => b.on_time_rate).filter((r) => r !== null).map(Number);
  const chartTitle = t("chart_title", { bucket: unit, range: rangeText(params) });
  const chartDesc =
    trend.target_rate === null
      ? t("chart_desc_no_target", { count: formatInt(buckets.length) })
      : t("chart_desc", {
          count: formatInt(buckets.length),
          target: formatRate(trend.target_rate),
          min: rates.length ? formatRate(Math.min(...rates)) : t("none"),
          max: rates.length ? formatRate(Math.max(...rates)) : t("none"),
        });
  const chartBox = h("div", { class: "chart-box" });

  const node = [
    breadcrumbs([[t("nav_scorecards"), `#/${query}`], [agencyName, `#/agency/${enc(agencyId)}${query}`]], name),
    pageHeading(name),
    h("p", { class: "lead", lang: other }, commitment[`name_${other}`]),
    feedLink(`commitments/${enc(agencyId)}/${enc(commitmentId)}`, t("feed_commitment")),
    facts([
      [t("col_agency"), h("a", { href: `#/agency/${enc(agencyId)}${query}` }, agencyName)],
      [t("commitment_id"), code(commitmentId)],
      [t("service_code"), code(commitment.service_code)],
      [t("deadline"), deadlineText(commitment)],
      [t("target"), formatRate(target)],
      [t("valid_from"), timeEl(commitment.valid_from)],
      [t("status"), history.retired ? t("retired") : t("in_force")],
      [t("terms_hash"), code(commitment.terms_hash)],
    ]),
    filterForm(params, { path: `#/commitment/${enc(agencyId)}/${enc(commitmentId)}`, keep: ["bucket"] }),
    h("h2", {}, t("published_figures"), " ", h("span", { class: "subtle" }, `(${selectionText(params)})`)),
    facts(
      PUBLISHED.map((figure) => [
        figureLabel(figure),
        h(
          "span",
          {},
          publishedCell(metrics, figure, figure === PUBLISHED[0] ? target : null),
          card ? rankNote(card, figure, scorecards, params) : null,
        ),
      ]),
      "facts figures",
    ),
    figureNotes({ minSample: scorecards.min_ranked_sample }),
    h("h2", {}, t("other_figures"), " ", h("span", { class: "subtle" }, `(${selectionText(params)})`)),
    facts(
      [
        [t("col_opened"), formatInt(metrics.cases_opened)],
        [t("col_closed"), formatInt(metrics.cases_closed)],
        [t("col_median"), formatDuration(metrics.median_fulfil_seconds)],
        [t("col_p90"), formatDuration(metrics.p90_fulfil_seconds)],
        [t("col_open"), formatInt(metrics.open_cases)],
        [t("col_overdue"), formatInt(metrics.overdue_cases)],
        [t("col_rejection"), formatRate(metrics.rejection_rate)],
        [t("col_late_rejections"), unansweredCell(metrics.late_rejections + metrics.late_withdrawals)],
        [t("col_latency"), formatDuration(metrics.latency_median_seconds)],
        [t("col_late"), formatInt(metrics.late_recordings)],
      ],
      "facts figures",
    ),
    h("h2", {}, t("feedback_figures"), " ", h("span", { class: "subtle" }, `(${selectionText(params)})`)),
    facts(
      [
        [t("col_rating"), ratingCell(metrics)],
        [t("col_rating_response"), formatRate(metrics.rating_response_rate)],
        [t("col_bad_ratings"), formatInt(metrics.bad_ratings)],
        [t("col_disputes"), formatInt(metrics.disputes)],
        [t("col_unanswered"), unansweredCell(metrics.disputes_unanswered)],
        [t("col_reopened"), formatInt(metrics.reopened)],
        [t("col_ratings_by_origin"), originCell(metrics)],
      ],
      "facts figures",
    ),
    h("h2", {}, t("filing_figures"), " ", h("span", { class: "subtle" }, `(${selectionText(params)})`)),
    facts(
      [
        [t("col_filings"), formatInt(metrics.filings)],
        [t("col_filings_accepted"), formatInt(metrics.filings_accepted)],
        [t("col_filings_rejected"), formatInt(metrics.filings_rejected)],
        [t("col_filings_late"), unansweredCell(metrics.filings_answered_late)],
        [t("col_filings_overdue"), unansweredCell(metrics.filings_overdue)],
      ],
      "facts figures",
    ),
    ratingDistribution(metrics),
    h("h2", {}, t("trend_title")),
    bucketSwitch(bucket, params, agencyId, commitmentId),
    rates.length
      ? h("figure", { class: "chart" }, chartBox, h("figcaption", {}, chartLegend(trend.target_rate)))
      : message(t("chart_empty")),
    buckets.length
      ? h(
          "details",
          { class: "chart-data" },
          h("summary", {}, t("data_table")),
          table({
            caption: t("trend_caption", { bucket: unit }),
            columns: [
              { label: t("period_start") },
              { label: t("on_time_rate"), num: true },
              { label: t("on_time"), num: true },
              { label: t("eligible"), num: true },
            ],
            rows: buckets.map((b) =>
              row(timeEl(b.start, { dateOnly: true }), [
                [formatRate(b.on_time_rate), true],
                [formatInt(b.metrics.on_time), true],
                [formatInt(b.metrics.on_time_eligible), true],
              ]),
            ),
          }),
        )
      : null,
    h("h2", {}, t("versions")),
    table({
      caption: t("versions_caption"),
      columns: [
        { label: t("version") },
        { label: t("published") },
        { label: t("deadline") },
        { label: t("col_target"), num: true },
        { label: t("valid_from") },
        { label: t("col_proof") },
      ],
      rows: versions.map((version) =>
        row(
          h("span", {}, formatInt(version.version), version.voided_by !== null ? h("span", { class: "badge warn" }, t("voided", { seq: version.voided_by })) : null),
          [
            [timeEl(version.occurred_at), false],
            [deadlineText(version), false],
            [formatRate(version.target_rate), true],
            [timeEl(version.valid_from), false],
            [proofLink(version.proof.seq), false],
          ],
        ),
      ),
    }),
  ];
  const points = buckets.map((b) => ({
    start: b.start,
    rate: b.on_time_rate === null ? null : Number(b.on_time_rate),
    on_time: b.metrics.on_time,
    eligible: b.metrics.on_time_eligible,
  }));
  return {
    title: name,
    node,
    // the chart sizes itself to its box, so it is drawn once the box is in the page
    after: () => {
      if (rates.length) drawTrend(chartBox, points, { target: trend.target_rate === null ? null : Number(trend.target_rate), title: chartTitle, desc: chartDesc });
    },
  };
}

/** The commitment's rank by `figure` among all commitments of the selection, linked to that ranking; or why it is not
 * ranked. */
function rankNote(card, figure, scorecards, params) {
  const rank = rankOf(card, figure);
  if (rank === null) return h("span", { class: "rank-note" }, t("not_ranked", { n: formatInt(scorecards.min_ranked_sample) }));
  const ranked = scorecards.items.filter((c) => rankOf(c, figure) !== null).length;
  return h(
    "span",
    { class: "rank-note" },
    h("a", { href: rankingsHash(params, "commitment", figure.key) }, t("rank_of", { rank: formatInt(rank), n: formatInt(ranked) })),
  );
}

/** How the ratings of a selection are spread over the scores: a table (with bars) a screen reader reads as one. */
function ratingDistribution(metrics) {
  const counts = metrics.rating_distribution || [0, 0, 0, 0, 0];
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  return table({
    caption: t("distribution_caption", { n: formatInt(total) }),
    columns: [{ label: t("col_score") }, { label: t("col_ratings"), num: true }, { label: t("col_share") }],
    className: "distribution",
    rows: [5, 4, 3, 2, 1].map((score) => {
      const n = counts[score - 1];
      const share = n / total;
      const bar = h("span", { class: "share-bar", "aria-hidden": "true" });
      bar.style.width = `${(share * 100).toFixed(1)}%`; // through the CSSOM: the page's policy forbids style attributes
      return row(h("span", {}, `${score} · ${t(`score.${score}`)}`), [
        [formatInt(n), true],
        [h("span", { class: "share" }, h("span", { class: "share-track" }, bar), formatRate(share)), false],
      ]);
    }),
  });
}

/** The chart's key: what a plain bar, a hatched bar and the dashed line mean. */
function chartLegend(target) {
  const swatch = (className) => h("span", { class: `swatch ${className}`, "aria-hidden": "true" });
  return h(
    "ul",
    { class: "legend" },
    target === null ? null : h("li", {}, swatch("meets"), t("legend_meets")),
    target === null ? null : h("li", {}, swatch("below"), t("legend_below")),
    target === null ? null : h("li", {}, swatch("target"), t("chart_target", { target: formatRate(target) })),
    h("li", {}, swatch("empty"), t("chart_no_data")),
  );
}

function bucketSwitch(bucket, params, agencyId, commitmentId) {
  const name = newId("bucket");
  const choices = ["day", "week"].map((value) => {
    const id = newId("bucket-option");
    return h(
      "span",
      { class: "choice" },
      h("input", {
        type: "radio", name, id, value, checked: value === bucket,
        onchange: () => {
          const next = new URLSearchParams(params);
          next.set("bucket", value);
          navigate(`#/commitment/${enc(agencyId)}/${enc(commitmentId)}?${next}`, { focus: `.bucket-switch input[value="${value}"]` });
        },
      }),
      h("label", { for: id }, t(`bucket_${value}`)),
    );
  });
  return h("fieldset", { class: "bucket-switch" }, h("legend", {}, t("bucket")), choices);
}

/** Ratings by the origin of the key that signed them (ledger.metrics: filed, claimed, agency-issued), each with its
 * mean: a printed code's ratings are never mixed with those of keys only citizens held. */
function originCell(metrics) {
  const names = [t("origin_filed"), t("origin_claimed"), t("origin_agency_issued")];
  const counts = metrics.ratings_by_key_origin || [0, 0, 0];
  const means = metrics.rating_average_by_key_origin || [null, null, null];
  return names
    .map((name, i) => `${name} ${formatInt(counts[i])}` + (means[i] ? ` (${Number(means[i]).toFixed(2)})` : ""))
    .join(" · ");
}
