// Labels in Chinese (the default) and English. Keys are stable ids; a missing key shows the
// key itself, which a test would notice.
const zh = {
  'app.title': '会员运营控制台', 'nav.dashboard': '数据概览', 'nav.campaigns': '营销活动', 'nav.rewards': '积分商城', 'nav.members': '会员服务',
  'lang.other': 'English', 'common.loading': '加载中…', 'common.save': '保存', 'common.create': '创建', 'common.search': '查询', 'common.more': '加载更多', 'common.none': '暂无',
  'common.error': '请求失败', 'common.signin': '登录', 'common.username': '用户名', 'common.password': '密码', 'common.signedInAs': '当前身份', 'common.localOperator': '本地运营（开发环境）',
  'dash.title': '数据概览', 'dash.from': '开始日期', 'dash.to': '结束日期', 'dash.apply': '查询', 'dash.tz': '时区',
  'kpi.joined': '新增会员', 'kpi.members': '会员总数（期末）', 'kpi.active': '活跃会员（月）', 'kpi.purchases': '订单数', 'kpi.gmv': '交易额 GMV', 'kpi.netGmv': '净交易额',
  'kpi.repurchase': '复购率（月）', 'kpi.liability': '积分负债（期末）', 'kpi.liabilityValue': '积分负债价值', 'kpi.redemption': '优惠券核销率', 'kpi.couponsIssued': '发放优惠券', 'kpi.couponsRedeemed': '核销优惠券',
  'chart.gmv': '每日交易额与订单数', 'chart.members': '会员与活跃会员（按月）', 'chart.liability': '积分负债', 'chart.redemption': '优惠券核销率（按日）', 'chart.tiers': '等级分布（期末）', 'chart.moves': '等级变动',
  'series.gmv': '交易额', 'series.orders': '订单数', 'series.members': '会员', 'series.active': '活跃会员', 'series.points': '积分', 'series.rate': '核销率', 'series.moves': '人数',
  'tier.regular': '普通会员', 'tier.silver': '白银会员', 'tier.gold': '黄金会员', 'tier.diamond': '钻石会员',
  'camp.title': '营销活动', 'camp.list': '活动列表', 'camp.new': '新建活动', 'camp.name': '活动名称', 'camp.tiers': '目标等级', 'camp.couponTitle': '优惠券标题',
  'camp.offerKind': '优惠类型', 'camp.offer.amount_off': '满减', 'camp.offer.percent_off': '折扣', 'camp.offer.free_shipping': '免运费', 'camp.value': '减免金额（元）', 'camp.percent': '折扣百分比',
  'camp.minSpend': '最低消费（元）', 'camp.validDays': '有效天数', 'camp.budget': '发放上限（张）', 'camp.holdout': '对照组比例（%）', 'camp.variants': 'A/B 实验',
  'camp.variants.none': '不做实验', 'camp.variants.ab': '两组：满减 / 免运费', 'camp.schedule': '执行计划', 'camp.schedule.monthly': '每月会员日', 'camp.schedule.once': '一次性（指定时间）', 'camp.at': '执行时间',
  'camp.created': '活动已创建', 'camp.run': '立即执行', 'camp.state': '状态', 'camp.createdAt': '创建时间', 'camp.lastRun': '最近执行', 'camp.runs': '执行记录',
  'camp.targeted': '目标', 'camp.issued': '已发放', 'camp.skipped': '已跳过', 'camp.failed': '失败', 'camp.state.running': '进行中', 'camp.state.drained': '已完成', 'camp.state.failed': '失败', 'camp.state.none': '未执行',
  'camp.experiment': '实验结果', 'camp.arm': '分组', 'camp.armMembers': '人数', 'camp.converted': '转化', 'camp.convRate': '转化率', 'camp.gmvPerMember': '人均交易额', 'camp.uplift': '提升', 'camp.ci': '95% 置信区间', 'camp.pValue': 'p 值', 'camp.verdict': '结论',
  'verdict.significant': '显著', 'verdict.not significant': '不显著', 'verdict.too few members': '样本不足', 'camp.holdoutArm': '对照组', 'camp.noExperiment': '本活动尚无实验数据（报表按发券日统计）',
  'rew.title': '积分商城', 'rew.new': '新建商品', 'rew.name': '名称', 'rew.kind': '类型', 'rew.kind.coupon': '优惠券', 'rew.kind.gift': '实物礼品', 'rew.price': '价格（积分）', 'rew.stock': '库存', 'rew.claimed': '已兑换',
  'rew.coupon': '优惠券模板', 'rew.active': '上架', 'rew.deactivate': '下架', 'rew.edit': '修改价格/库存', 'rew.unlimited': '不限', 'rew.yes': '是', 'rew.no': '否', 'rew.saved': '已保存',
  'rew.claims': '礼品兑换单', 'rew.claimsNote': '礼品兑换单按会员处理：在「会员服务」中打开会员即可发货或取消；也可在此输入会员号和兑换单号。', 'rew.claimId': '兑换单号', 'rew.ship': '标记已发货', 'rew.cancel': '取消兑换',
  'mem.title': '会员服务', 'mem.by': '查询方式', 'mem.by.memberId': '会员号', 'mem.by.email': '邮箱（已验证）', 'mem.by.phone': '手机号（已验证，+86…）', 'mem.value': '查询内容',
  'mem.unverifiedNote': '未验证的邮箱或手机号不会建立索引，无法查到；请改用会员号查询。',
  'mem.profile': '会员资料', 'mem.id': '会员号', 'mem.name': '姓名', 'mem.email': '邮箱', 'mem.phone': '手机号', 'mem.verified': '已验证', 'mem.unverified': '未验证', 'mem.joinedAt': '入会时间', 'mem.tier': '等级', 'mem.tierSince': '等级生效',
  'mem.points': '积分余额', 'mem.available': '可用积分', 'mem.pending': '待生效积分', 'mem.onHold': '下单冻结', 'mem.lifetimeSpend': '累计消费', 'mem.birthday': '生日',
  'mem.tierHistory': '等级历史', 'mem.from': '原等级', 'mem.to': '新等级', 'mem.reason': '原因', 'mem.at': '时间',
  'mem.coupons': '优惠券', 'mem.code': '券码', 'mem.couponTitle': '名称', 'mem.status': '状态', 'mem.validUntil': '有效期至',
  'mem.ledger': '积分明细', 'mem.kind': '类型', 'mem.change': '变动', 'mem.balanceAfter': '变动后余额',
  'mem.adjust': '手工调整积分', 'mem.adjustPoints': '调整积分（负数为扣减）', 'mem.adjustReason': '调整原因（必填）', 'mem.adjustDone': '积分已调整',
  'mem.setBirthday': '设置生日', 'mem.birthdayReason': '修改原因', 'mem.birthdayDone': '生日已设置',
  'mem.erase': '删除个人数据（数据主体请求）', 'mem.eraseConfirm': '请输入会员号以确认删除', 'mem.erased': '已删除该会员的个人数据',
  'ledger.welcome': '入会奖励', 'ledger.purchase': '消费得积分', 'ledger.refund': '退款扣回', 'ledger.redemption': '下单抵扣', 'ledger.activity': '互动奖励', 'ledger.referral': '推荐奖励', 'ledger.expiry': '积分过期',
  'ledger.returned': '退款返还', 'ledger.release': '积分生效', 'ledger.reward': '兑换商品', 'ledger.rebate': '返利抵扣', 'ledger.adjustment': '人工调整',
  'coupon.active': '可用', 'coupon.redeemed': '已使用', 'coupon.expired': '已过期',
  'claim.issued': '已发券', 'claim.pending': '待发货', 'claim.shipped': '已发货', 'claim.cancelled': '已取消', 'rew.actions': '操作', 'rew.updatedAt': '更新时间',
};
const en = {
  'app.title': 'Loyalty operator console', 'nav.dashboard': 'Dashboard', 'nav.campaigns': 'Campaigns', 'nav.rewards': 'Rewards', 'nav.members': 'Member support',
  'lang.other': '中文', 'common.loading': 'Loading…', 'common.save': 'Save', 'common.create': 'Create', 'common.search': 'Search', 'common.more': 'Load more', 'common.none': 'None',
  'common.error': 'Request failed', 'common.signin': 'Sign in', 'common.username': 'User name', 'common.password': 'Password', 'common.signedInAs': 'Signed in as', 'common.localOperator': 'local operator (development)',
  'dash.title': 'Dashboard', 'dash.from': 'From', 'dash.to': 'To', 'dash.apply': 'Show', 'dash.tz': 'Time zone',
  'kpi.joined': 'Members joined', 'kpi.members': 'Members (end)', 'kpi.active': 'Active members (month)', 'kpi.purchases': 'Orders', 'kpi.gmv': 'GMV', 'kpi.netGmv': 'Net GMV',
  'kpi.repurchase': 'Repurchase rate (month)', 'kpi.liability': 'Points liability (end)', 'kpi.liabilityValue': 'Liability value', 'kpi.redemption': 'Coupon redemption rate', 'kpi.couponsIssued': 'Coupons issued', 'kpi.couponsRedeemed': 'Coupons redeemed',
  'chart.gmv': 'Daily GMV and orders', 'chart.members': 'Members and active members (monthly)', 'chart.liability': 'Points liability', 'chart.redemption': 'Coupon redemption rate (daily)', 'chart.tiers': 'Tier distribution (end)', 'chart.moves': 'Tier moves',
  'series.gmv': 'GMV', 'series.orders': 'Orders', 'series.members': 'Members', 'series.active': 'Active', 'series.points': 'Points', 'series.rate': 'Redemption rate', 'series.moves': 'Members',
  'tier.regular': 'Regular', 'tier.silver': 'Silver', 'tier.gold': 'Gold', 'tier.diamond': 'Diamond',
  'camp.title': 'Campaigns', 'camp.list': 'Campaigns', 'camp.new': 'New campaign', 'camp.name': 'Name', 'camp.tiers': 'Tiers', 'camp.couponTitle': 'Coupon title',
  'camp.offerKind': 'Offer', 'camp.offer.amount_off': 'Amount off', 'camp.offer.percent_off': 'Percent off', 'camp.offer.free_shipping': 'Free shipping', 'camp.value': 'Amount off (CNY)', 'camp.percent': 'Percent off',
  'camp.minSpend': 'Minimum spend (CNY)', 'camp.validDays': 'Valid days', 'camp.budget': 'Budget (coupons)', 'camp.holdout': 'Holdout (%)', 'camp.variants': 'A/B test',
  'camp.variants.none': 'No experiment', 'camp.variants.ab': 'Two arms: amount off / free shipping', 'camp.schedule': 'Schedule', 'camp.schedule.monthly': 'Every member day', 'camp.schedule.once': 'Once, at', 'camp.at': 'At',
  'camp.created': 'Campaign created', 'camp.run': 'Run now', 'camp.state': 'State', 'camp.createdAt': 'Created', 'camp.lastRun': 'Last run', 'camp.runs': 'Runs',
  'camp.targeted': 'Targeted', 'camp.issued': 'Issued', 'camp.skipped': 'Skipped', 'camp.failed': 'Failed', 'camp.state.running': 'Running', 'camp.state.drained': 'Drained', 'camp.state.failed': 'Failed', 'camp.state.none': 'Not run',
  'camp.experiment': 'Experiment results', 'camp.arm': 'Arm', 'camp.armMembers': 'Members', 'camp.converted': 'Converted', 'camp.convRate': 'Conversion', 'camp.gmvPerMember': 'GMV per member', 'camp.uplift': 'Uplift', 'camp.ci': '95% CI', 'camp.pValue': 'p-value', 'camp.verdict': 'Verdict',
  'verdict.significant': 'significant', 'verdict.not significant': 'not significant', 'verdict.too few members': 'too few members', 'camp.holdoutArm': 'holdout', 'camp.noExperiment': 'No experiment data for this campaign yet (the report counts by issue day)',
  'rew.title': 'Rewards catalog', 'rew.new': 'New reward', 'rew.name': 'Name', 'rew.kind': 'Kind', 'rew.kind.coupon': 'Coupon', 'rew.kind.gift': 'Gift', 'rew.price': 'Price (points)', 'rew.stock': 'Stock', 'rew.claimed': 'Claimed',
  'rew.coupon': 'Coupon template', 'rew.active': 'Active', 'rew.deactivate': 'Deactivate', 'rew.edit': 'Edit price/stock', 'rew.unlimited': 'unlimited', 'rew.yes': 'yes', 'rew.no': 'no', 'rew.saved': 'Saved',
  'rew.claims': 'Gift claims', 'rew.claimsNote': 'Gift claims are handled per member: open the member in Member support to ship or cancel; or enter the member id and claim id here.', 'rew.claimId': 'Claim id', 'rew.ship': 'Mark shipped', 'rew.cancel': 'Cancel claim',
  'mem.title': 'Member support', 'mem.by': 'Find by', 'mem.by.memberId': 'Member id', 'mem.by.email': 'Email (verified)', 'mem.by.phone': 'Phone (verified, +86…)', 'mem.value': 'Value',
  'mem.unverifiedNote': 'An unverified email or phone is not indexed and finds nobody; search by member id instead.',
  'mem.profile': 'Profile', 'mem.id': 'Member id', 'mem.name': 'Name', 'mem.email': 'Email', 'mem.phone': 'Phone', 'mem.verified': 'verified', 'mem.unverified': 'unverified', 'mem.joinedAt': 'Joined', 'mem.tier': 'Tier', 'mem.tierSince': 'Tier since',
  'mem.points': 'Points balance', 'mem.available': 'Available', 'mem.pending': 'Pending', 'mem.onHold': 'Held by checkouts', 'mem.lifetimeSpend': 'Lifetime spend', 'mem.birthday': 'Birthday',
  'mem.tierHistory': 'Tier history', 'mem.from': 'From', 'mem.to': 'To', 'mem.reason': 'Reason', 'mem.at': 'At',
  'mem.coupons': 'Coupons', 'mem.code': 'Code', 'mem.couponTitle': 'Title', 'mem.status': 'Status', 'mem.validUntil': 'Valid until',
  'mem.ledger': 'Points ledger', 'mem.kind': 'Kind', 'mem.change': 'Change', 'mem.balanceAfter': 'Balance after',
  'mem.adjust': 'Adjust points', 'mem.adjustPoints': 'Points (negative takes away)', 'mem.adjustReason': 'Reason (required)', 'mem.adjustDone': 'Points adjusted',
  'mem.setBirthday': 'Set birthday', 'mem.birthdayReason': 'Reason', 'mem.birthdayDone': 'Birthday set',
  'mem.erase': 'Erase personal data (data-subject request)', 'mem.eraseConfirm': 'Type the member id to confirm', 'mem.erased': 'Personal data erased',
  'ledger.welcome': 'Welcome', 'ledger.purchase': 'Purchase', 'ledger.refund': 'Refund', 'ledger.redemption': 'Redeemed at checkout', 'ledger.activity': 'Activity', 'ledger.referral': 'Referral', 'ledger.expiry': 'Expired',
  'ledger.returned': 'Returned', 'ledger.release': 'Released', 'ledger.reward': 'Reward', 'ledger.rebate': 'Rebate spent', 'ledger.adjustment': 'Manual adjustment',
  'coupon.active': 'active', 'coupon.redeemed': 'redeemed', 'coupon.expired': 'expired',
  'claim.issued': 'coupon issued', 'claim.pending': 'pending', 'claim.shipped': 'shipped', 'claim.cancelled': 'cancelled', 'rew.actions': 'Actions', 'rew.updatedAt': 'Updated',
};
const dictionaries = { zh, en };

export let lang = localStorage.getItem('console.lang') === 'en' ? 'en' : 'zh';

export function t(key) {
  return dictionaries[lang][key] ?? key;
}

export function setLang(l) {
  lang = l;
  localStorage.setItem('console.lang', l);
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
}

export function locale() {
  return lang === 'zh' ? 'zh-CN' : 'en-GB';
}

/** Static labels of the page shell (data-i18n). */
export function translateShell() {
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  document.title = t('app.title');
}
