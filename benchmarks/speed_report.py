"""The report of ``bench_speed.py``: ratios Flow / baseline, the targets, and the Markdown table."""
from __future__ import annotations

from typing import List, Optional

CONCURRENCY = (1, 4, 16)  # concurrent clients of the load phases


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 2) if a and b else None


def find_row(rows: List[dict], c: int) -> Optional[dict]:
    return next((r for r in rows if r['concurrency'] == c), None)


def compute_ratios(report: dict) -> dict:
    out = {}
    base = report.get('baseline', {}).get('pipeline', {})
    batched = report.get('baseline', {}).get('reader', {})
    for backend, flow in report.get('flow', {}).items():
        for endpoint in ('/search', '/answer'):
            for c in CONCURRENCY:
                f = find_row(flow.get('load', {}).get(endpoint, []), c)
                b = find_row(base.get(endpoint, []), c)
                if f and b:
                    out[f'{backend}{endpoint}@{c}'] = {
                        'qps_flow_over_baseline': ratio(f['qps'], b['qps']),
                        'p50_flow_over_baseline': ratio(f['p50_ms'], b['p50_ms']),
                    }
                r = find_row(batched.get(endpoint, []), c)
                if f and r:
                    out[f'{backend}{endpoint}@{c}']['qps_flow_over_inprocess_reader'] = ratio(f['qps'], r['qps'])
    return out


def targets(report: dict) -> dict:
    emb = report.get('embedding', {}).get('summary', {})
    out = {
        'embedding onnx/torch at batch 32 >= 2.5 (fp32)': {'value': emb.get('onnx_over_torch_bs32'),
                                                          'met': (emb.get('onnx_over_torch_bs32') or 0) >= 2.5},
    }
    if emb.get('onnx_int8_bs32') and emb.get('torch_bs32'):
        value = round(emb['onnx_int8_bs32'] / emb['torch_bs32'], 2)
        out['embedding onnx/torch at batch 32 >= 2.5 (int8)'] = {'value': value, 'met': value >= 2.5}
    for variant, flow in report.get('flow', {}).items():
        answer4 = report.get('ratios', {}).get(f'{variant}/answer@4', {}).get('qps_flow_over_baseline')
        out[f'[{variant}] /answer QPS Flow/baseline at 4 clients >= 1.5'] = {'value': answer4,
                                                                           'met': (answer4 or 0) >= 1.5}
        search4 = report.get('ratios', {}).get(f'{variant}/search@4', {}).get('qps_flow_over_baseline')
        out[f'[{variant}] /search QPS Flow/baseline at 4 clients >= 0.8'] = {'value': search4,
                                                                           'met': (search4 or 0) >= 0.8}
        search1 = find_row(flow.get('load', {}).get('/search', []), 1)
        p50 = search1['p50_ms'] if search1 else None
        out[f'[{variant}] /search p50 ms at 1 client <= 15'] = {'value': p50, 'met': (p50 or 1e9) <= 15}
        idle = (flow.get('idle_after_load') or {}).get('pss_mb')
        out[f'[{variant}] Flow PSS MB idle <= 1200'] = {'value': idle, 'met': (idle or 1e9) <= 1200}
        if flow.get('feedback'):
            after = flow['feedback']['memory_after']['pss_mb']
            out[f'[{variant}] Flow PSS MB after a feedback round <= 1536'] = {'value': after, 'met': after <= 1536}
        out[f'[{variant}] Flow ready seconds <= 10'] = {'value': flow.get('startup_seconds'),
                                                       'met': (flow.get('startup_seconds') or 1e9) <= 10}
    return out


def markdown(report: dict) -> str:
    lines = [f"Speed on {report['machine']['cpus']} CPU cores ({report['machine']['processor']}); "
             f"{report.get('embedding', {}).get('docs', 213)} FAQ docs, {report['config']['questions']} questions, "
             f"/answer reads the top {report['config']['limit']} FAQ answers; reader {report['config']['reader']}; "
             f"{report['config']['threads'] or 'default'} threads per model.", '']
    emb = report.get('embedding', {}).get('summary', {})
    if emb:
        lines += ['| Embedding (docs/s, best of reps) | batch 1 | batch 32 |', '|---|---:|---:|']
        for name in ('torch', 'onnx', 'onnx_int8'):
            lines.append(f"| {name} | {emb.get(f'{name}_bs1')} | {emb.get(f'{name}_bs32')} |")
        lines.append(f"| onnx / torch | {emb.get('onnx_over_torch_bs1')}x | {emb.get('onnx_over_torch_bs32')}x |")
        lines += ['', f"Length-sorted vs arrival-order batches of 32: onnx {emb.get('sorted_over_arrival_onnx_bs32')}x, "
                      f"torch {emb.get('sorted_over_arrival_torch_bs32')}x.", '']
    q = report.get('quality')
    if q:
        lines += ['| Quality | torch | onnx fp32 | onnx int8 |', '|---|---:|---:|---:|']
        r, a = q['retrieval'], q['reader']
        lines.append(f"| FAQ hit@1 (reworded, {r['queries']}) | {r['torch']['hit_at_1']} | {r['onnx']['hit_at_1']} | "
                     f"{r['onnx_int8']['hit_at_1']} |")
        lines.append(f"| paragraph hit@1 (COVID-QA dev, {r['paragraph_queries']}) | {r['torch']['paragraph_hit_at_1']} | "
                     f"{r['onnx']['paragraph_hit_at_1']} | {r['onnx_int8']['paragraph_hit_at_1']} |")
        lines.append(f"| reader F1 (paragraph dev, {a['questions']}) | {a['torch']['f1']} | {a['onnx']['f1']} | "
                     f"{a['onnx_int8']['f1']} |")
        lines.append(f"| reader EM | {a['torch']['exact_match']} | {a['onnx']['exact_match']} | "
                     f"{a['onnx_int8']['exact_match']} |")
        lines.append(f"| reader windows/s | {a['torch']['windows_per_s']} | {a['onnx']['windows_per_s']} | "
                     f"{a['onnx_int8']['windows_per_s']} |")
        lines.append('')
    header = '| Endpoint | clients | ' + ' | '.join(
        f'{name} QPS | {name} p50/p95 ms' for name in report.get('columns', [])) + ' |'
    if report.get('columns'):
        lines += [header, '|---|---:|' + '---:|---:|' * len(report['columns'])]
        for endpoint in ('/search', '/answer'):
            for c in CONCURRENCY:
                cells = []
                for name in report['columns']:
                    row = find_row(report['_rows'].get(name, {}).get(endpoint, []), c)
                    cells += [f"{row['qps']}" if row else '-',
                              f"{row['p50_ms']:.0f}/{row['p95_ms']:.0f}" if row else '-']
                lines.append(f'| {endpoint} | {c} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    for backend, flow in report.get('flow', {}).items():
        lines.append(f"Flow ({backend}): ready in {flow.get('startup_seconds')} s, peak RSS {flow.get('peak_rss_mb')} MB "
                     f"(PSS {flow.get('peak_pss_mb')} MB) over {flow.get('peak_processes')} processes, "
                     f"/index {flow.get('index_docs_per_s')} docs/s, PSS {flow.get('pss_ready_mb')} MB when ready, "
                     f"{(flow.get('idle_after_load') or {}).get('pss_mb')} MB idle after the load.")
        feedback = flow.get('feedback')
        if feedback:
            lines.append(f"Flow ({backend}) after {feedback['labelled_queries']} labelled queries, {feedback['rounds']} "
                         f"feedback round(s) and the re-embedding (embedder v{feedback['target_version']}): PSS "
                         f"{feedback['memory_after']['pss_mb']} MB (RSS {feedback['memory_after']['rss_mb']} MB).")
    floor = report.get('framework_floor_per_process') or {}
    if floor:
        lines.append(f"Every Flow process imports jina (docarray imports torch: {floor.get('imports_torch')}), "
                     f"{floor.get('rss_mb')} MB RSS / {floor.get('uss_mb')} MB private before any model is loaded.")
    lines.append('')
    for name, t in report.get('targets', {}).items():
        lines.append(f"- target {name}: {t['value']} -> {'met' if t['met'] else 'NOT met'}")
    return '\n'.join(lines) + '\n'
