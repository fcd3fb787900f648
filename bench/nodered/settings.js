/**
 * Node-RED settings for the benchmark's `nodered` contender; bench/ingest.py starts it as
 * `node node_modules/node-red/red.js --settings settings.js --userDir DIR DIR/flows.json`.
 *
 * Headless: no editor, no admin API, no HTTP server at all (httpAdminRoot and httpNodeRoot
 * false), so the contender is the flow alone. Nothing leaves the machine (telemetry and update
 * checks off), nothing is installed at run time, and the log goes to stdout, which the bench
 * keeps with the run. The broker, database and client id come from the environment: flow.json
 * reads them as ${LUXTEL_BENCH_...} properties, so the same file imports into any editor.
 */
module.exports = {
    flowFile: "flows.json",
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    functionExternalModules: false,
    exportGlobalContextKeys: false,
    logging: { console: { level: "info", metrics: false, audit: false } },
};
