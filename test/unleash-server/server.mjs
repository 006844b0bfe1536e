// Starts the real Unleash server for the flag tests, configured only through the environment that
// test/helpers/unleash.ts gives it (DATABASE_URL, HTTP_HOST, HTTP_PORT, INIT_*_API_TOKENS).
// It must never call out of this machine, and must never outlive the test process that started it.

// Forced, not defaulted: a test run must not phone home even if the caller forgot one of these.
process.env.CHECK_VERSION = 'false';
process.env.SEND_TELEMETRY = 'false';
process.env.SCARF_ANALYTICS = 'false';
process.env.DO_NOT_TRACK = '1';
process.env.TZ = 'UTC';
// The local PostgreSQL speaks plain TCP on loopback.
process.env.DATABASE_SSL ??= 'false';

const { start, LogLevel } = await import('unleash-server');

// The parent holds our stdin open; when it ends (the test process exited or was killed) nobody
// will ever stop this server, so it stops itself instead of lingering on the port and database.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

const logLevel = LogLevel[process.env.LOG_LEVEL ?? 'warn'] ?? LogLevel.warn;

try {
  const unleash = await start({
    logLevel,
    authentication: { type: 'open-source', enableApiToken: true },
    // Only tokens matter to the tests; the UI login of a default admin user is never used.
    server: { gracefulShutdownTimeout: 200 },
  });
  const address = unleash.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : address;
  console.log(`unleash ${unleash.version} listening on ${port}`);
} catch (error) {
  console.error(error);
  process.exit(1);
}
