"""Chinese phrase banks of the embedded Weibo world.

Everything the simulator says comes from here, so a teacher can read (and edit) the world's
vocabulary in one place. Slots in braces are filled by ``socialalign_lib.world.compose``:
``{entity}`` and ``{city}`` come from the topic, ``{num}`` is a number, ``{thing}`` a daily-life noun.
"""

from __future__ import annotations

CITIES = [
    "北京",
    "上海",
    "广州",
    "深圳",
    "杭州",
    "成都",
    "武汉",
    "西安",
    "南京",
    "重庆",
    "长沙",
    "苏州",
    "天津",
    "青岛",
    "厦门",
]

# key -> (Chinese name, entities, good-news leads, bad-news leads, mixed/informational leads,
#         positive reply clauses, negative reply clauses, neutral reply clauses)
CATEGORIES: dict[str, dict[str, list[str] | str]] = {
    "tech": {
        "name": "科技",
        "entities": [
            "国产大模型",
            "折叠屏手机",
            "智能驾驶",
            "国产芯片",
            "人形机器人",
            "卫星互联网",
            "量子计算机",
            "新能源电池",
        ],
        "good": [
            "{city}企业发布新一代{entity}，性能提升{num}%",
            "{entity}取得重大突破，成本下降{num}%",
            "首批{entity}在{city}正式投入使用",
        ],
        "bad": [
            "{entity}被曝存在严重安全漏洞，{num}万用户受影响",
            "{city}一家{entity}公司裁员{num}%引发关注",
            "{entity}频繁出现故障，用户投诉激增{num}%",
        ],
        "mixed": [
            "{city}举办{entity}产业大会，{num}家企业参展",
            "专家解读{entity}未来发展方向",
            "{entity}行业报告发布，市场规模约{num}亿元",
        ],
        "pos": [
            "{entity}越来越厉害了",
            "国产{entity}终于站起来了",
            "科技改变生活，{entity}值得期待",
            "{entity}这波进步太大了",
            "为{city}的工程师点赞",
        ],
        "neg": [
            "{entity}的安全问题必须重视",
            "吹了这么久的{entity}就这",
            "{entity}出问题谁来负责",
            "用户数据都泄露了还谈什么{entity}",
            "{entity}的宣传太浮夸了",
        ],
        "neu": [
            "{entity}到底怎么样还要看实际体验",
            "关注一下{entity}后续进展",
            "{entity}的原理有人科普一下吗",
            "不太懂{entity}，先看看评论",
        ],
    },
    "prices": {
        "name": "物价",
        "entities": ["猪肉价格", "房租", "油价", "菜价", "电费", "学区房", "外卖配送费", "地铁票价"],
        "good": [
            "{city}{entity}连续{num}周下降",
            "多部门出手稳定{entity}，{city}率先落实",
            "{city}{entity}补贴政策出台，每户最高{num}元",
        ],
        "bad": [
            "{city}{entity}上涨{num}%创新高",
            "{entity}再次上调，{city}市民直呼压力大",
            "{city}{entity}一年涨了{num}%",
        ],
        "mixed": [
            "{city}发布{entity}监测报告，总体平稳",
            "{entity}调整方案公开征求意见",
            "统计局公布{entity}数据，同比变化{num}%",
        ],
        "pos": [
            "{entity}终于降了，钱包松了口气",
            "这政策实在，{entity}能稳住就好",
            "{city}这次办了件实事",
            "{entity}降下来生活轻松多了",
        ],
        "neg": [
            "{entity}又涨了，工资怎么不涨",
            "{entity}这么贵还让不让人活",
            "{city}的{entity}真的离谱",
            "每个月光{entity}就花掉一半工资",
            "涨价永远比降价快",
        ],
        "neu": [
            "{entity}涨跌其实挺正常的",
            "等细则出来再看{entity}怎么变",
            "不同区域{entity}差别很大",
            "{entity}的数据怎么算的",
        ],
    },
    "sports": {
        "name": "体育",
        "entities": [
            "国足",
            "女排",
            "中国乒乓球队",
            "马拉松",
            "中国游泳队",
            "CBA总决赛",
            "短道速滑队",
            "羽毛球混双",
        ],
        "good": [
            "{entity}{num}比0大胜对手晋级",
            "{entity}在{city}夺得冠军",
            "{entity}打破世界纪录，包揽{num}枚金牌",
        ],
        "bad": [
            "{entity}爆冷出局，{city}球迷失望",
            "{entity}{num}连败引发热议",
            "{entity}赛场出现争议判罚，{num}万网友声讨",
        ],
        "mixed": [
            "{entity}公布新一期集训名单",
            "{city}将承办{entity}相关赛事",
            "{entity}新赛季赛程出炉，共{num}场",
        ],
        "pos": [
            "{entity}太燃了，热泪盈眶",
            "这才是{entity}该有的样子",
            "为{entity}疯狂打call",
            "{entity}永远的骄傲",
            "今晚{entity}值得一杯酒",
        ],
        "neg": [
            "{entity}这踢的什么玩意",
            "看{entity}的比赛就是受罪",
            "{entity}该换教练了",
            "{entity}的表现太让人失望",
            "裁判毁了{entity}的比赛",
        ],
        "neu": [
            "{entity}下一场对手是谁",
            "{entity}的阵容有点变化",
            "坐等{entity}正式比赛",
            "{entity}的赛程安排挺紧的",
        ],
    },
    "entertainment": {
        "name": "娱乐",
        "entities": ["国产电影", "综艺节目", "演唱会", "新剧", "偶像男团", "春晚节目", "音乐节", "网络短剧"],
        "good": [
            "{entity}票房突破{num}亿，口碑爆棚",
            "{city}{entity}门票{num}分钟售罄",
            "{entity}获国际大奖，全网刷屏",
        ],
        "bad": [
            "{entity}被指抄袭，{num}万网友要求道歉",
            "{city}{entity}临时取消，观众退票难",
            "{entity}演员片酬过高引发争议",
        ],
        "mixed": ["{entity}定档{num}月上映", "{entity}公布全新阵容", "{city}将举办{entity}，详情待公布"],
        "pos": [
            "{entity}太好看了，二刷安排",
            "{entity}真的yyds",
            "期待{entity}好久了",
            "{entity}的制作很用心",
            "冲着{entity}也要去{city}",
        ],
        "neg": [
            "{entity}越来越难看了",
            "抄袭的{entity}不配拿奖",
            "{entity}就知道圈钱",
            "退票这么难，{entity}太坑了",
            "{entity}的剧情太烂",
        ],
        "neu": [
            "{entity}什么时候上线",
            "{entity}有人看过吗",
            "{entity}的阵容还行吧",
            "观望一下{entity}的口碑",
        ],
    },
    "education": {
        "name": "教育",
        "entities": [
            "双减政策",
            "高考改革",
            "研究生扩招",
            "校园午餐",
            "课后服务",
            "义务教育",
            "职业教育",
            "留学生政策",
        ],
        "good": [
            "{city}推进{entity}，学生负担减轻{num}%",
            "{entity}新方案出台，{num}万学生受益",
            "{city}{entity}免费覆盖全部学校",
        ],
        "bad": [
            "{city}{entity}被曝乱收费，家长投诉{num}起",
            "{entity}落实不到位，学生作业反增{num}%",
            "{city}一学校{entity}出现食品安全问题",
        ],
        "mixed": ["教育部就{entity}答记者问", "{city}{entity}试点进入第{num}年", "{entity}调研报告发布"],
        "pos": [
            "{entity}是真的为孩子好",
            "{city}的{entity}做得不错",
            "孩子终于能多睡会了",
            "支持{entity}，教育就该这样",
        ],
        "neg": [
            "{entity}最后苦的还是家长",
            "{entity}变了味，孩子更累了",
            "乱收费必须严查",
            "{entity}纯属形式主义",
            "孩子的安全谁来保障",
        ],
        "neu": [
            "{entity}具体怎么执行还不清楚",
            "各地{entity}情况不太一样",
            "{entity}效果要过几年才知道",
            "想了解一下{entity}细则",
        ],
    },
    "health": {
        "name": "健康",
        "entities": [
            "医保报销",
            "流感疫苗",
            "社区医院",
            "抗癌新药",
            "体检套餐",
            "互联网医院",
            "儿科门诊",
            "医美项目",
        ],
        "good": [
            "{entity}纳入医保，患者负担降低{num}%",
            "{city}{entity}全面升级，排队时间缩短一半",
            "{entity}临床试验成功率达{num}%",
        ],
        "bad": [
            "{city}{entity}一号难求，家长排队{num}小时",
            "{entity}被曝虚假宣传，{num}人受害",
            "{entity}价格暴涨，患者难以承受",
        ],
        "mixed": ["专家提醒：{entity}要注意这几点", "{city}{entity}服务调整通知", "{entity}使用指南发布"],
        "pos": [
            "{entity}这政策太暖心了",
            "终于不用为{entity}发愁了",
            "{entity}救了很多家庭",
            "给{city}的医生点赞",
        ],
        "neg": [
            "看个病比登天还难",
            "{entity}就是割韭菜",
            "{entity}这么贵普通人怎么办",
            "{entity}的问题早该管管了",
            "排队几小时看病五分钟",
        ],
        "neu": [
            "{entity}具体怎么报销",
            "收藏了，{entity}以后用得上",
            "{entity}有没有副作用",
            "问问身边人{entity}的情况",
        ],
    },
    "environment": {
        "name": "环境",
        "entities": [
            "垃圾分类",
            "空气质量",
            "长江禁渔",
            "新能源汽车",
            "植树造林",
            "碳排放",
            "河道治理",
            "限塑令",
        ],
        "good": [
            "{city}{entity}成效显著，优良天数增加{num}天",
            "{entity}十年，{city}生态明显改善",
            "{city}{entity}获评全国示范",
        ],
        "bad": [
            "{city}{entity}恶化，PM2.5超标{num}倍",
            "{city}河道发现偷排，{entity}成空话",
            "{entity}执行混乱，{city}居民不满",
        ],
        "mixed": ["{city}发布{entity}年度报告", "{entity}新规下月起施行", "专家谈{entity}的挑战与机遇"],
        "pos": [
            "{entity}做得好，蓝天又回来了",
            "为{city}的{entity}点赞",
            "环境好了大家都受益",
            "{entity}坚持下去才有希望",
        ],
        "neg": [
            "{entity}就是面子工程",
            "偷排的企业必须重罚",
            "{entity}搞得居民太麻烦",
            "{city}的空气让人窒息",
            "说了多少年{entity}还是老样子",
        ],
        "neu": [
            "{entity}需要每个人参与",
            "{entity}的数据挺有意思",
            "看看{entity}能不能长期坚持",
            "{entity}的新规有人解读吗",
        ],
    },
    "transport": {
        "name": "交通",
        "entities": [
            "地铁新线",
            "高铁",
            "共享单车",
            "网约车",
            "早高峰拥堵",
            "机场快线",
            "电动车新规",
            "停车收费",
        ],
        "good": [
            "{city}{entity}正式开通，通勤缩短{num}分钟",
            "{entity}提速，{city}到省会只要{num}分钟",
            "{city}{entity}免费试乘{num}天",
        ],
        "bad": [
            "{city}{entity}故障停运，{num}万乘客滞留",
            "{city}{entity}涨价{num}%引发不满",
            "{city}{entity}乱象频发",
        ],
        "mixed": ["{city}{entity}规划公示", "{entity}运营时间调整", "{city}{entity}新规征求意见"],
        "pos": [
            "{entity}开通太方便了",
            "通勤终于不用挤了",
            "{city}的{entity}越来越好",
            "{entity}速度真快，点赞",
        ],
        "neg": [
            "{entity}天天出问题",
            "{entity}涨价真离谱",
            "{city}的{entity}堵到怀疑人生",
            "{entity}管理太混乱了",
            "每天通勤两小时谁懂",
        ],
        "neu": [
            "{entity}经过我家附近吗",
            "{entity}的时刻表在哪看",
            "{entity}新规具体怎么罚",
            "等{entity}正式运营再说",
        ],
    },
    "food": {
        "name": "美食",
        "entities": [
            "奶茶新品",
            "火锅店",
            "预制菜",
            "夜市小吃",
            "老字号糕点",
            "网红餐厅",
            "外卖套餐",
            "地方特色菜",
        ],
        "good": [
            "{city}{entity}上新，首日卖出{num}万份",
            "{city}{entity}入选非遗，游客排队{num}小时",
            "{entity}评选揭晓，{city}上榜{num}家",
        ],
        "bad": [
            "{city}{entity}被曝食品安全问题，{num}人送医",
            "{entity}偷偷涨价{num}%被吐槽",
            "{city}{entity}卫生不合格遭处罚",
        ],
        "mixed": ["{city}{entity}地图发布", "{entity}消费趋势报告出炉", "{city}{entity}节将于下月举办"],
        "pos": [
            "{entity}看着就好吃",
            "周末就去{city}吃{entity}",
            "{entity}真的绝绝子",
            "吃货的快乐就是{entity}",
        ],
        "neg": [
            "{entity}卫生问题太恶心了",
            "{entity}又贵又难吃",
            "再也不吃{entity}了",
            "{entity}全靠营销",
            "食品安全是底线",
        ],
        "neu": ["{entity}在{city}哪里有", "{entity}有人吃过吗", "{entity}的价格怎么样", "马一下{entity}"],
    },
    "society": {
        "name": "社会",
        "entities": [
            "见义勇为",
            "外卖小哥",
            "养老金",
            "社区志愿者",
            "电信诈骗",
            "延迟退休",
            "快递丢件",
            "老旧小区改造",
        ],
        "good": [
            "{city}{entity}获表彰，网友集体点赞",
            "{city}{entity}惠及{num}万居民",
            "{city}{entity}暖心一幕刷屏",
        ],
        "bad": [
            "{city}{entity}案件频发，涉案{num}万元",
            "{city}{entity}纠纷引发冲突",
            "{entity}问题突出，{city}居民投诉{num}次",
        ],
        "mixed": ["{city}发布{entity}相关通知", "{entity}调查数据公布", "{city}就{entity}召开座谈会"],
        "pos": ["{entity}的故事太暖了", "这个社会还是好人多", "为{city}的{entity}点赞", "正能量满满，感动"],
        "neg": [
            "{entity}必须严惩",
            "{entity}的问题什么时候能解决",
            "普通人太难了",
            "{entity}让人寒心",
            "监管去哪了",
        ],
        "neu": ["{entity}具体情况还待调查", "等官方通报吧", "{entity}的事大家怎么看", "希望{entity}有个说法"],
    },
}

GENERIC = {
    "positive": ["太好了", "点赞", "支持", "真不错", "开心", "好消息", "必须支持", "赞一个"],
    "negative": ["离谱", "无语", "太失望了", "气死了", "受不了", "真的服了", "寒心", "什么鬼"],
    "neutral": ["先看看", "坐等后续", "了解一下", "有待观察", "看情况吧", "不好说", "路过", "理性看待"],
}

# Emoji: Weibo bracket codes and unicode, by sentiment (a user picks favourites among them).
EMOJI = {
    "positive": ["[赞]", "[哈哈]", "[心]", "[鼓掌]", "👍", "🎉", "❤️", "😄"],
    "negative": ["[怒]", "[泪]", "[允悲]", "[吐]", "😡", "😭", "🙄", "💢"],
    "neutral": ["[思考]", "[吃瓜]", "[doge]", "[二哈]", "🤔", "👀", "😶", "🍉"],
}

CATCH_PHRASES = [
    "说实话",
    "绝了",
    "yyds",
    "emmm",
    "家人们",
    "真的会谢",
    "好家伙",
    "我觉得吧",
    "讲道理",
    "啊这",
    "破防了",
    "冲鸭",
    "懂的都懂",
    "怎么说呢",
    "救命",
    "蚌埠住了",
    "不是吧",
    "一整个爱住",
]

END_PUNCT = {
    "exclaim": "！",
    "triple_exclaim": "！！！",
    "period": "。",
    "tilde": "~",
    "ellipsis": "…",
    "question": "？？",
    "none": "",
}

PERSONALITIES: dict[str, dict[str, object]] = {
    # expressiveness scales how strongly stance/valence move sentiment; extra = a clause this personality adds.
    "rational": {
        "zh": "理性严谨",
        "expressiveness": 0.9,
        "extra": ["从数据看还要再观察", "理性分析一下", "凡事看长期效果", "别被标题带节奏"],
    },
    "humorous": {
        "zh": "幽默风趣",
        "expressiveness": 1.3,
        "extra": ["笑死我了", "我直接好家伙", "建议直接上热搜", "这操作我给满分"],
    },
    "emotional": {
        "zh": "感性细腻",
        "expressiveness": 1.8,
        "extra": ["看得我眼眶都湿了", "心里五味杂陈", "说不出的感觉", "真的很触动"],
    },
    "blunt": {
        "zh": "直率敢言",
        "expressiveness": 1.6,
        "extra": ["我就直说了", "有什么不敢说的", "话糙理不糙", "不服来辩"],
    },
    "mild": {
        "zh": "温和友善",
        "expressiveness": 1.0,
        "extra": ["大家都不容易", "希望越来越好", "慢慢来吧", "理解万岁"],
    },
}

# Values archetypes set the user's stance per category (added to the sentiment logit,
# docs/design.md#the-embedded-world).
ARCHETYPES: dict[str, dict[str, object]] = {
    "tech_optimist": {
        "zh": "相信科技进步",
        "identity": "作为科技爱好者",
        "stance": {"tech": 1.3, "environment": 0.4, "transport": 0.3},
        "interests": ["tech", "transport"],
    },
    "frugal_worker": {
        "zh": "务实节俭，关注民生",
        "identity": "打工人表示",
        "stance": {"prices": -1.4, "transport": -0.6, "health": -0.5, "food": 0.3},
        "interests": ["prices", "transport", "food"],
    },
    "sports_patriot": {
        "zh": "热爱运动，集体荣誉感强",
        "identity": "作为老球迷",
        "stance": {"sports": 1.2, "tech": 0.4},
        "interests": ["sports", "entertainment"],
    },
    "fan_culture": {
        "zh": "追求快乐，支持偶像",
        "identity": "作为粉丝",
        "stance": {"entertainment": 1.4, "food": 0.6},
        "interests": ["entertainment", "food"],
    },
    "anxious_parent": {
        "zh": "重视教育和家庭安全",
        "identity": "作为家长",
        "stance": {"education": -1.1, "health": -0.6, "society": -0.7, "food": -0.4},
        "interests": ["education", "health", "society"],
    },
    "eco_activist": {
        "zh": "重视环保与可持续",
        "identity": "作为环保志愿者",
        "stance": {"environment": -1.0, "food": -0.3, "tech": 0.3},
        "interests": ["environment", "society"],
    },
    "foodie": {
        "zh": "享受生活，热爱美食",
        "identity": "作为吃货",
        "stance": {"food": 1.3, "entertainment": 0.4, "prices": -0.5},
        "interests": ["food", "entertainment"],
    },
    "neutral_observer": {
        "zh": "客观中立，不轻易下结论",
        "identity": "路人觉得",
        "stance": {},
        "interests": ["society", "tech", "health"],
    },
    "civic_critic": {
        "zh": "关注公平，批评不公",
        "identity": "作为普通市民",
        "stance": {"society": -1.2, "prices": -0.6, "education": -0.4, "health": -0.6},
        "interests": ["society", "prices", "education"],
    },
}

EMOTIONAL_BASELINES = {"pessimist": (-0.6, "消极"), "even": (0.0, "中性"), "optimist": (0.6, "积极")}

LENGTH_CLASSES = {"short": (1, 1), "medium": (2, 3), "long": (4, 5)}
LENGTH_ZH = {"short": "简短", "medium": "适中", "long": "长篇"}

NAME_PREFIX = [
    "爱吃",
    "快乐的",
    "北漂",
    "沪上",
    "佛系",
    "努力的",
    "深夜",
    "奔跑的",
    "安静的",
    "早起的",
    "迷路的",
    "热心",
    "摸鱼的",
    "认真",
    "孤独的",
    "元气",
    "躺平的",
    "资深",
    "小镇",
    "追风的",
]
NAME_CORE = [
    "小王",
    "火锅",
    "柠檬",
    "打工人",
    "猫咪",
    "阿杰",
    "老李",
    "大白",
    "橘子",
    "程序员",
    "阿花",
    "球迷",
    "吃货",
    "鲸鱼",
    "老师",
    "面包",
    "星星",
    "豆豆",
    "咸鱼",
    "小熊",
]

DAILY_LIFE = [
    "今天的{thing}真不错",
    "下班路上买了{thing}",
    "周末在家研究{thing}",
    "又是被{thing}治愈的一天",
    "朋友推荐的{thing}试了一下",
    "早起第一件事就是{thing}",
    "最近迷上了{thing}",
]
DAILY_THINGS = ["咖啡", "晚霞", "新书", "跑步", "做饭", "猫", "电影", "拼图", "花", "雨天", "宵夜", "老歌"]

# Posts the official history filter should drop (ads, lotteries, @-mentions, super-topics).
JUNK_POSTS = [
    "转发抽奖，送{num}个红包 #抽奖#",
    "@好友 快来帮我砍一刀",
    "【广告】{thing}限时特价，点击网页链接",
    "#明星超话# 打卡第{num}天",
    "转发微博",
    "投票：你最喜欢哪个{thing}？",
]

MEDIA_ACCOUNTS = [
    "人民日报",
    "央视新闻",
    "新京报",
    "澎湃新闻",
    "中国新闻网",
    "环球时报",
    "头条新闻",
    "财经网",
]

# --- SMPD-like photo posts (MultiSmpLLM) and their hashtag/image/face features (NARRATOR) ---
SMP_CATEGORIES: dict[str, dict[str, object]] = {
    "travel": {
        "zh": "旅行",
        "effect": 0.6,
        "sub": {
            "海边": ["沙滩", "日落", "冲浪"],
            "古镇": ["石桥", "灯笼", "小巷"],
            "雪山": ["冰川", "登山", "云海"],
        },
    },
    "food": {
        "zh": "美食",
        "effect": 0.3,
        "sub": {"甜点": ["蛋糕", "冰淇淋", "马卡龙"], "家常菜": ["红烧肉", "饺子", "面条"]},
    },
    "animal": {
        "zh": "动物",
        "effect": 0.8,
        "sub": {"宠物": ["猫", "狗", "兔子"], "野生": ["熊猫", "鸟", "鹿"]},
    },
    "fashion": {
        "zh": "时尚",
        "effect": 0.5,
        "sub": {"街拍": ["外套", "球鞋", "墨镜"], "美妆": ["口红", "香水", "眼影"]},
    },
    "urban": {
        "zh": "城市",
        "effect": 0.1,
        "sub": {"夜景": ["霓虹", "高楼", "车流"], "建筑": ["桥", "塔", "老街"]},
    },
    "nature": {
        "zh": "自然",
        "effect": 0.4,
        "sub": {"花卉": ["樱花", "向日葵", "荷花"], "天气": ["彩虹", "暴雨", "雪景"]},
    },
    "people": {
        "zh": "人像",
        "effect": 0.7,
        "sub": {"家庭": ["婚礼", "宝宝", "聚会"], "运动": ["跑步", "篮球", "瑜伽"]},
    },
    "tech": {
        "zh": "数码",
        "effect": -0.2,
        "sub": {"设备": ["相机", "手机", "耳机"], "游戏": ["主机", "键盘", "手柄"]},
    },
}
SMP_TITLE = [
    "{concept}的{time}",
    "记录一下{concept}",
    "今日份{concept}",
    "{place}的{concept}",
    "偶遇{concept}",
    "{concept}，太美了",
]
SMP_TIMES = ["清晨", "午后", "傍晚", "深夜", "周末", "假期"]
SMP_CAPTION = [
    "一张关于{concept}的照片，背景是{scene}",
    "画面中有{concept}，光线{light}",
    "{scene}前的{concept}特写",
]
SMP_SCENES = ["蓝天", "城市街道", "室内", "草地", "海面", "山脉"]
SMP_LIGHT = ["明亮", "柔和", "昏暗", "逆光"]
