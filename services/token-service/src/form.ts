import { TokenExchangeError } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

export interface FormLimits {
  /** Longest body, in bytes. */
  maxBytes: number;
  /** Most parameters. */
  maxParameters: number;
}

function bad(reason: 'form_encoding' | 'form_too_large' | 'too_many_parameters', what: string) {
  return new TokenExchangeError('invalid_request', reason, what);
}

function decodeComponent(raw: string): string {
  if (BAD_ESCAPE.test(raw)) throw bad('form_encoding', 'the form is not valid urlencoded UTF-8');
  try {
    // decodeURIComponent refuses escapes that do not form UTF-8 (surrogates included).
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    throw bad('form_encoding', 'the form is not valid urlencoded UTF-8');
  }
}

/**
 * Parses an `application/x-www-form-urlencoded` body strictly, as RFC 6749 asks of a token
 * endpoint: the bytes and every percent-escape must be UTF-8 (URLSearchParams would silently
 * put U+FFFD in their place), no parameter may appear twice (RFC 6749 3.2), and size and count
 * are bounded. Parameters sent without a value are treated as omitted (RFC 6749 3.1).
 */
export function parseTokenForm(body: Buffer, limits: FormLimits): Map<string, string> {
  if (body.length > limits.maxBytes) throw bad('form_too_large', 'the request body is too large');
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw bad('form_encoding', 'the form is not valid urlencoded UTF-8');
  }
  const seen = new Set<string>();
  const params = new Map<string, string>();
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decodeComponent(pair.slice(eq + 1));
    if (seen.has(name)) {
      throw new TokenExchangeError(
        'invalid_request',
        'duplicate_parameter',
        'a parameter appears more than once',
      );
    }
    seen.add(name);
    if (seen.size > limits.maxParameters) {
      throw bad('too_many_parameters', 'the request has too many parameters');
    }
    if (value !== '') params.set(name, value);
  }
  return params;
}
