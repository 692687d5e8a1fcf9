/**
 * A webhook receiver over real HTTP (node:http) for the alert notification
 * tests: records every request (headers and parsed JSON body) and answers as
 * the test says. It can stop and listen again on the same port, which is how
 * a receiver that is down and comes back looks to the sender.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: unknown;
}

/** How to answer one request; `hang` never answers (the sender's timeout must end it). */
export type Answer = { readonly status: number; readonly headers?: Record<string, string> } | 'hang';

export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>` + path. */
  url(path?: string): string;
  readonly received: ReceivedRequest[];
  /** Decides each answer; default 200. */
  answer: (request: ReceivedRequest) => Answer;
  /** Resolves with the next request received. */
  next(): Promise<ReceivedRequest>;
  /** Stops listening (open connections are cut): the port refuses connections until `up()`. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedRequest[] = [];
  let waiting: Array<(r: ReceivedRequest) => void> = [];
  const hanging = new Set<http.ServerResponse>();
  const receiver: WebhookReceiver = {
    url: (p = '/hook') => `http://127.0.0.1:${port}${p}`,
    received,
    answer: () => ({ status: 200 }),
    next: () => new Promise((resolve) => waiting.push(resolve)),
    down: () => stop(),
    up: () => listen(port),
    close: () => stop(),
  };
  const handler: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      const request: ReceivedRequest = { path: req.url ?? '', headers: req.headers, body };
      received.push(request);
      const answer = receiver.answer(request);
      const wakers = waiting;
      waiting = [];
      for (const w of wakers) w(request);
      if (answer === 'hang') {
        hanging.add(res);
        return;
      }
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
      res.end(answer.status < 300 ? 'ok' : `answer ${answer.status}`);
    });
  };
  let server: http.Server | undefined;
  let port = 0;
  async function listen(on: number): Promise<void> {
    const s = http.createServer(handler);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(on, '127.0.0.1', () => resolve());
    });
    server = s;
    port = (s.address() as AddressInfo).port;
  }
  async function stop(): Promise<void> {
    const s = server;
    server = undefined;
    if (s === undefined) return;
    for (const res of hanging) res.destroy();
    hanging.clear();
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
  await listen(0);
  return receiver;
}
