// The public REST API, used by the tests only to ARRANGE what the browser
// then acts on (an account, a product with little stock, an order placed
// elsewhere) and to wait for the saga; never to assert what a page shows.
'use strict';
const { expect } = require('@playwright/test');
const crypto = require('crypto');

const DEMO = {
  shopper: { email: 'shopper@example.com', password: 'demo-shopper-password' },
  operator: { email: 'operator@example.com', password: 'demo-operator-password' },
  admin: { email: 'admin@example.com', password: 'demo-admin-password' },
};

const ADDRESS = {
  name: 'Ada Lovelace',
  line1: '1 Analytical St',
  city: 'Berlin',
  postal_code: '10115',
  country: 'DE',
};

/** Something no other run (nor test) uses: `<prefix>-<time>-<random>`, upper case. */
function unique(prefix) {
  const random = crypto.randomBytes(3).toString('hex');
  return `${prefix}-${Date.now().toString(36)}-${random}`.toUpperCase();
}

/** A fresh customer's credentials (email in lower case). */
function newCustomer(tag = 'shopper') {
  const id = unique(tag).toLowerCase();
  return { name: `Web Test ${id}`, email: `${id}@example.com`, password: 'correct-horse-battery-staple' };
}

/** A UUID v7 (time-ordered), as the services make event ids. */
function uuidv7() {
  const bytes = crypto.randomBytes(16);
  const ms = BigInt(Date.now());
  for (let i = 0; i < 6; i++) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Polls `probe` until it returns something truthy, within `timeout` ms. */
async function until(what, probe, { timeout = 20_000, every = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** One caller of the API: a request context (its base URL) and a bearer token. */
class Api {
  constructor(request, token = null) {
    this.request = request;
    this.token = token;
  }

  static async signIn(request, { email, password }) {
    const r = await request.post('/api/v1/auth/token', { data: { email, password } });
    expect(r.status(), `sign-in of ${email}: ${await r.text()}`).toBe(200);
    return new Api(request, (await r.json()).access_token);
  }

  /** Registers a customer (201) and signs it in. */
  static async register(request, customer) {
    const r = await request.post('/api/v1/auth/register', { data: customer });
    expect(r.status(), `registration of ${customer.email}: ${await r.text()}`).toBe(201);
    return Api.signIn(request, customer);
  }

  headers() {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  async call(method, path, data, expected) {
    const r = await this.request.fetch(path, { method, headers: this.headers(), data });
    const text = await r.text();
    if (expected !== undefined) {
      expect(r.status(), `${method} ${path}: ${text}`).toBe(expected);
    } else {
      expect(r.ok(), `${method} ${path}: ${r.status()} ${text}`).toBeTruthy();
    }
    return text ? JSON.parse(text) : null;
  }

  get(path, expected) {
    return this.call('GET', path, undefined, expected);
  }

  post(path, data = {}, expected) {
    return this.call('POST', path, data, expected);
  }

  me() {
    return this.get('/api/v1/me');
  }

  /** (admin) A product with `stock` units, once the inventory knows them. */
  async createProduct({ name, sku, price = 1250, stock = 50, description }) {
    const product = await this.post(
      '/api/v1/products',
      { name, sku, description, price: { amount: price, currency: 'EUR' }, initial_stock: stock },
      201,
    );
    await until(`the stock of ${sku}`, async () => {
      const r = await this.request.get(`/api/v1/inventory/${product.id}`);
      return r.ok() && (await r.json()).available === stock;
    });
    return product;
  }

  /** (a customer) Places an order; answers it as created (PENDING). */
  placeOrder(items, { token = 'tok_visa', email = 'web-tests@example.com' } = {}) {
    return this.post(
      '/api/v1/orders',
      { email, phone: '+4930123456', items, shipping_address: ADDRESS, payment_token: token },
      201,
    );
  }

  order(id) {
    return this.get(`/api/v1/orders/${id}`);
  }

  /** Waits until the order is in `status` (one of them, if an array). */
  async waitForStatus(id, status, timeout = 20_000) {
    const wanted = [].concat(status);
    return until(`order ${id} in ${wanted.join(' or ')}`, async () => {
      const order = await this.order(id);
      return wanted.includes(order.status) ? order : null;
    }, { timeout });
  }
}

module.exports = { Api, DEMO, ADDRESS, unique, newCustomer, uuidv7, until };
