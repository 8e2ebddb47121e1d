// Type-checked (never run) with `tsc --noEmit -p test`: the public API as an app would use it.
import Switchboard, {
  SwitchboardError,
  isTerminalCode,
  type PublicationContext,
  type StreamPosition,
  type Subscription,
} from '../src/switchboard.js';

interface ChatMessage {
  text: string;
}

const client = new Switchboard('ws://127.0.0.1:8000/ws', {
  getToken: async () => (await (await fetch('/dev/token?user=alice')).json()).token as string,
  transports: ['websocket', 'sse'],
  minReconnectDelay: 500,
  maxReconnectDelay: 20000,
  pingGrace: 10000,
  debug: false,
  name: 'types',
});

client.on('connecting', (ctx) => {
  const delay: number = ctx.delay;
  console.log('reconnecting in', delay, ctx.code, ctx.reason);
});
client.on('connected', (ctx) => {
  const transport: 'websocket' | 'sse' = ctx.transport;
  console.log(ctx.client, ctx.user, transport);
});
client.on('disconnected', (ctx) => {
  if (!ctx.reconnect && isTerminalCode(ctx.code)) console.log('gone for good', ctx.reason);
});
client.on('state', ({ newState, oldState }) => console.log(oldState, '->', newState));
client.on('error', (ctx) => console.error(ctx.type, ctx.error.message));
client.connect();

const sub: Subscription<ChatMessage> = client.subscribe<ChatMessage>('chat:lobby', {
  onPublication: (ctx: PublicationContext<ChatMessage>) => {
    const text: string = ctx.data.text;
    const author: string | undefined = ctx.info?.user;
    console.log(ctx.offset, author, text);
  },
  onJoin: (ctx) => console.log('join', ctx.client.user),
  onLeave: (ctx) => console.log('leave', ctx.client.client),
  onReset: (ctx) => console.log('reload state', ctx.channel, ctx.position?.epoch),
  onSubscribed: (ctx) => console.log('subscribed', ctx.recovered, ctx.first, ctx.transport),
  onError: (ctx) => console.log(ctx.error.code),
});
sub.on('publication', (ctx) => console.log(ctx.data.text));

const pos: StreamPosition | null = sub.position;
if (pos) console.log(pos.offset + 1, pos.epoch.length);

async function main(): Promise<void> {
  await client.ready(5000);
  const published: StreamPosition = await client.publish('chat:lobby', { text: 'hi' });
  console.log(published.offset, published.epoch);
  await sub.publish({ text: 'again' });
  const hist = await client.history<ChatMessage>('chat:lobby', { limit: 50, reverse: true });
  for (const p of hist.publications) console.log(p.offset, p.data.text, p.info?.user);
  const pres = await client.presence('chat:lobby');
  console.log(pres.clients.map((c) => c.user));
  try {
    await client.publish('news:x', 1);
  } catch (e) {
    if (e instanceof SwitchboardError) console.log(e.code, e.status);
  }
  sub.unsubscribe();
  client._debugDropConnection();
  console.log(client.state, client.transport, client._transport?.kind);
  client.disconnect();
}
void main();

// @ts-expect-error: the state is a closed set
const bad: typeof client.state = 'open';
void bad;
