// One JSON log line per event, with secrets redacted wherever they might appear.
import { pino, type Logger } from 'pino'

export const REDACTED_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.cookie',
  'headers.authorization',
  '*.password',
  '*.token'
]

export function createLogger (level: string): Logger {
  return pino({ name: 'ficus', level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } })
}
